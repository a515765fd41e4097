"""What each command does, as plain functions returning exit codes (the CLI stays thin)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from runner.diagnostics import Diagnostic, Severity, format_report
from runner.errors import EXIT_INVALID_RECIPE, EXIT_OK
from runner.validation import discover, validate_file


def run_validate(paths: Sequence[str], fmt: str, *, strict: bool = False) -> int:
    """Validate recipes and print one report; 0 when all are valid, 3 when not."""
    files = discover(paths)
    diagnostics: list[Diagnostic] = []
    for path in files:
        diagnostics.extend(validate_file(path).diagnostics)
    if strict:
        diagnostics = [
            Diagnostic(d.file, d.line, d.column, d.path, d.message, Severity.ERROR)
            for d in diagnostics
        ]
    click.echo(format_report(diagnostics, len(files), fmt))
    return EXIT_INVALID_RECIPE if any(d.is_error for d in diagnostics) else EXIT_OK
