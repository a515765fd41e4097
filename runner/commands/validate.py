"""``transcript-runner validate``: every problem in every recipe, with no network."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import click

from runner.checks import discover, validate_file
from runner.diagnostics import Diagnostic, Severity, format_report
from runner.errors import EXIT_INVALID_RECIPE, EXIT_OK


@dataclass(frozen=True)
class ValidateRequest:
    paths: Sequence[str]  # recipe files or folders; none: recipes/
    fmt: str | None = None  # text, json or github; None: github in GitHub Actions
    strict: bool = False  # warnings count as errors


def validate(request: ValidateRequest) -> int:
    """Validate recipes and print one report; 0 when all are valid, 3 when not."""
    files = discover(request.paths)
    diagnostics: list[Diagnostic] = []
    for path in files:
        diagnostics.extend(validate_file(path).diagnostics)
    if request.strict:
        diagnostics = [
            Diagnostic(d.file, d.line, d.column, d.path, d.message, Severity.ERROR)
            for d in diagnostics
        ]
    fmt = request.fmt or ("github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text")
    click.echo(format_report(diagnostics, len(files), fmt))
    return EXIT_INVALID_RECIPE if any(d.is_error for d in diagnostics) else EXIT_OK
