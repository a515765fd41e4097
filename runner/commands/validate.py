"""``transcript-runner validate``: every problem in every recipe, with no network
(``--online`` reads the LLM Gateway's public model list, and nothing else)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from runner.checks import discover, validate_file
from runner.checks.models import Catalog, check_models, fetch_catalog, gateway_url
from runner.checks.windows import check_windows
from runner.diagnostics import Diagnostic, Severity, format_report
from runner.errors import EXIT_INVALID_RECIPE, EXIT_OK, StoreError, UsageError
from runner.store import DEFAULT_STATE_DIR, Store


@dataclass(frozen=True)
class ValidateRequest:
    paths: Sequence[str]  # recipe files or folders; none: recipes/
    fmt: str | None = None  # text, json or github; None: github in GitHub Actions
    strict: bool = False  # warnings count as errors
    online: bool = False  # check model names against the Gateway's catalog
    region: str | None = None  # us or eu: what that region offers
    state_dir: Path | None = None  # where the catalog is kept


def validate(request: ValidateRequest) -> int:
    """Validate recipes and print one report; 0 when all are valid, 3 when not."""
    files = discover(request.paths)
    if not files:
        places = ", ".join(request.paths) or "recipes/"
        raise UsageError(
            f"no recipes in {places}: validate looks for *.yaml and *.yml files (hidden "
            "folders and out/ skipped); name the recipe files or their folder"
        )
    diagnostics: list[Diagnostic] = []
    catalog = _catalog(request) if request.online else None
    for path in files:
        result = validate_file(path)
        diagnostics.extend(result.diagnostics)
        if result.recipe is not None and result.doc is not None:
            diagnostics.extend(check_models(result.doc, result.recipe, catalog, request.region))
            if catalog is not None:
                diagnostics.extend(check_windows(result.doc, result.recipe, catalog.windows))
    if request.strict:
        diagnostics = [
            Diagnostic(d.file, d.line, d.column, d.path, d.message, Severity.ERROR)
            for d in diagnostics
        ]
    fmt = request.fmt or ("github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text")
    click.echo(format_report(diagnostics, len(files), fmt))
    return EXIT_INVALID_RECIPE if any(d.is_error for d in diagnostics) else EXIT_OK


def _catalog(request: ValidateRequest) -> Catalog:
    """The Gateway's model list, kept in the state store for a day (kept nowhere when
    the store cannot be opened: the check still runs)."""
    url = gateway_url(request.region, os.environ)
    try:
        store: Store | None = Store(request.state_dir or DEFAULT_STATE_DIR)
    except StoreError:
        store = None
    try:
        return fetch_catalog(url, store)
    finally:
        if store is not None:
            store.close()
