"""``transcript-runner schema``: the recipe JSON Schema, exactly as shipped."""

from __future__ import annotations

import click

from runner.errors import EXIT_OK
from runner.recipe.schema import schema_text


def schema() -> int:
    click.echo(schema_text(), nl=False)
    return EXIT_OK
