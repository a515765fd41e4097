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
from runner.checks.resources import check_resources
from runner.checks.windows import check_windows
from runner.diagnostics import Diagnostic, Severity, format_report
from runner.errors import EXIT_INVALID_RECIPE, EXIT_OK, StoreError, UsageError
from runner.recipe.document import Document
from runner.recipe.llm_server import (
    llm_server,
    on_server,
    unmapped_model_warning,
    unmapped_models,
)
from runner.recipe.model import Provider, Recipe
from runner.recipe.variables import command_line_vars
from runner.store import DEFAULT_STATE_DIR, Store


@dataclass(frozen=True)
class ValidateRequest:
    paths: Sequence[str]  # recipe files or folders; none: recipes/
    fmt: str | None = None  # text, json or github; None: github in GitHub Actions
    strict: bool = False  # warnings count as errors
    online: bool = False  # check model names against the Gateway's catalog
    region: str | None = None  # us or eu: what that region offers
    state_dir: Path | None = None  # where the catalog is kept
    llm_url: str | None = None  # check the recipes as they would run on this server
    llm_model: Sequence[str] = ()  # --llm-model MODEL or FROM=TO, as run takes it
    var: Sequence[str] = ()  # --var NAME=VALUE, over the recipes' `vars:`
    vars_files: Sequence[Path] = ()  # --vars FILE, under --var


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
    variables = command_line_vars(request.vars_files, request.var)
    server = llm_server(request.llm_url, request.llm_model) if request.llm_url else None
    if server is None and request.llm_model:
        raise UsageError("--llm-model names models on --llm-url's server; give --llm-url too")
    for path in files:
        result = validate_file(path, variables)
        diagnostics.extend(result.diagnostics)
        if result.recipe is not None and result.doc is not None:
            diagnostics.extend(check_models(result.doc, result.recipe, catalog, request.region))
            diagnostics.extend(check_resources(result.doc, result.recipe))
            if server is not None:
                diagnostics.extend(_on_server(result.doc, result.recipe, server))
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


def _on_server(doc: Document, recipe: Recipe, server: Provider) -> list[Diagnostic]:
    """The recipe as ``run --llm-url`` would run it: each Gateway model name that would
    reach the server unmapped, a warning at the first task that sends it."""
    first = {
        model: task for task, model in reversed(unmapped_models(on_server(recipe, server), server))
    }
    return [
        doc.diagnostic(
            ("tasks", task.name), unmapped_model_warning(model), severity=Severity.WARNING
        )
        for model, task in reversed(first.items())
    ]


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
