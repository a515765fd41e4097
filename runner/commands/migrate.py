"""``transcript-runner migrate``: rewrite LeMUR tasks as LLM Gateway tasks, in place."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import click

from runner.checks import discover, validate_file
from runner.diagnostics import display_path, format_report
from runner.errors import EXIT_FAILED, EXIT_INVALID_RECIPE, EXIT_OK
from runner.recipe.migration import Migration, migrate_text
from runner.results.outputs import write_atomic


@dataclass(frozen=True)
class MigrateRequest:
    paths: Sequence[str]
    check: bool = False  # say what would change (a diff), write nothing, exit 1 if anything


def migrate(request: MigrateRequest) -> int:
    """0 when every recipe is (now) free of LeMUR tasks; 1 when ``--check`` finds one to
    move, or a task had to be left for a person; 3 when a recipe is invalid."""
    files = discover(request.paths)
    invalid = [d for path in files for d in validate_file(path).diagnostics if d.is_error]
    if invalid:
        click.echo(format_report(invalid, len(files), "text"))
        click.echo("nothing was changed: fix these first", err=True)
        return EXIT_INVALID_RECIPE
    pending = False
    for path in files:
        original = path.read_text(encoding="utf-8")
        migration = migrate_text(original)
        shown = display_path(path)
        for reason in migration.left:
            click.echo(f"{shown}: left {reason}", err=True)
            pending = True
        if not migration.changed:
            continue
        if request.check:
            click.echo(_diff(shown, original, migration.text), nl=False)
            pending = True
            continue
        write_atomic(path, migration.text)
        click.echo(_moved(shown, migration))
    if request.check and not pending:
        click.echo(f"{len(files)} recipe(s): no LeMUR task to move")
    return EXIT_FAILED if pending else EXIT_OK


def _diff(shown: str, before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{shown}",
            tofile=f"b/{shown}",
        )
    )


def _moved(shown: str, migration: Migration) -> str:
    names = ", ".join(repr(name) for name in migration.changed)
    return f"{shown}: moved {names} to the LLM Gateway; check the prompt, then validate"
