"""``transcript-runner plan``: what a run would do, without doing it; nothing is sent."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import click

from runner.api.hosts import rest_region
from runner.checks import discover, load_recipes, validate_file
from runner.checks.models import (
    Catalog,
    check_models,
    fetch_catalog,
    gateway_url,
    kept_catalog,
    kept_windows,
)
from runner.diagnostics import Diagnostic, Severity
from runner.errors import EXIT_FAILED, EXIT_OK, ItemError, StoreError, UsageError
from runner.execute.forecast import forecast, merged_rates, run_timeout
from runner.execute.plan_text import plan_json, plan_text
from runner.execute.planning import Plan, make_plan
from runner.items import Shard
from runner.recipe.model import Recipe
from runner.recipe.prices import PriceTable, PriceTableError, by_recipe
from runner.recipe.variables import command_line_vars
from runner.results.paths import check_paths
from runner.store import DEFAULT_STATE_DIR, Store


@dataclass(frozen=True)
class PlanRequest:
    recipes: Sequence[str]
    state_dir: Path | None = None  # the ledger and cache a run would use
    shard: Shard | None = None  # only this CI job's share of the items
    prices: Path | None = None  # the user's price table, to estimate costs
    fmt: str = "text"  # text or json
    var: Sequence[str] = ()  # --var NAME=VALUE, over the recipes' `vars:`
    vars_files: Sequence[Path] = ()  # --vars FILE, under --var
    online: bool = False  # read the Gateway's model list (and its prices) afresh
    deadline: float | None = None  # seconds the run may take (else timeouts.run)
    per_item: bool = False  # a line per item (--items, -v)


def plan(request: PlanRequest) -> int:
    """Print what a run would do: transcriptions, LLM calls, cached work, audio, tokens."""
    if not request.recipes:
        raise UsageError("name at least one recipe: transcript-runner plan recipes/")
    check_paths(read_folders={"--state-dir": request.state_dir})
    # plan has no --region; an ASSEMBLYAI_BASE_URL of the EU is refused as `run` refuses it.
    variables = command_line_vars(request.vars_files, request.var)
    recipes = load_recipes(request.recipes, *rest_region(None, os.environ), variables)
    state_dir = request.state_dir or DEFAULT_STATE_DIR
    catalog = _catalog(state_dir, online=request.online)
    _warn_about_models(request.recipes, catalog)
    counted = count(recipes, state_dir, request.shard)
    try:
        table = by_recipe({recipe.name: recipe.prices for recipe in recipes}, request.prices)
    except PriceTableError as exc:
        raise UsageError(f"--prices {exc}") from None
    table = with_listed_prices(table, catalog, recipes)
    deadline = request.deadline if request.deadline is not None else run_timeout(recipes)
    ahead = forecast(
        counted.demand(),
        recipe_rates=merged_rates(recipes),
        learned=learned_rates(state_dir),
        deadline=deadline,
    )
    if request.fmt == "json":
        shown = {**plan_json(counted, table, ahead), "too_long": counted.too_long}
        click.echo(json.dumps(shown, indent=2))
    else:
        click.echo(plan_text(counted, table, ahead, per_item=request.per_item))
    # A prompt over its model's window is refused by the run before it is sent: said
    # here, with its size and the window, so nobody starts a run that cannot finish.
    for problem in counted.too_long:
        click.echo(f"error: {problem}", err=True)
    return EXIT_FAILED if counted.too_long else EXIT_OK


def learned_rates(state_dir: Path) -> dict[str, tuple[int, float]]:
    """What the last run in this state folder learned from the rate-limit headers."""
    store = Store.existing(state_dir)
    if store is None:
        return {}
    try:
        return store.rates()
    finally:
        store.close()


def count(
    recipes: Sequence[Recipe], state_dir: Path, shard: Shard | None, *, use_cache: bool = True
) -> Plan:
    """The plan of ``recipes`` against the store in ``state_dir`` (none: all to do).

    ``run`` counts its budgets with this too, so a budget means what ``plan`` shows.
    """
    windows = kept_windows(None, state_dir)  # a kept model list's context windows
    store = Store.existing(state_dir)
    try:
        return make_plan(recipes, store, shard, use_cache=use_cache, windows=windows)
    except (ItemError, StoreError) as exc:  # an unreadable input, a damaged store entry
        raise UsageError(exc.message) from None
    finally:
        if store is not None:
            store.close()


def _catalog(state_dir: Path, *, online: bool) -> Catalog | None:
    """The Gateway's model list: fetched with --online (kept a day, as validate keeps
    it), else the one `validate --online` kept, if any (plan fetches nothing then)."""
    store = Store.existing(state_dir) if not online else Store(state_dir)
    try:
        url = gateway_url(None, os.environ)
        return fetch_catalog(url, store) if online else kept_catalog(url, store)
    finally:
        if store is not None:
            store.close()


def with_listed_prices(
    tables: dict[str, PriceTable] | None, catalog: Catalog | None, recipes: Sequence[Recipe]
) -> dict[str, PriceTable] | None:
    """Each recipe's table over the prices the Gateway's list gives (the user's table
    wins where both price a model); unchanged when the list gives none."""
    if catalog is None or not catalog.prices:
        return tables
    listed = catalog.price_table()
    return {
        recipe.name: listed.merged((tables or {}).get(recipe.name, PriceTable()))
        for recipe in recipes
    }


def _warn_about_models(paths: Sequence[str], catalog: Catalog | None) -> None:
    """Models the Gateway's catalog does not list: as warnings, since a kept catalog
    may be old."""
    if catalog is None:
        return
    found: list[Diagnostic] = []
    for path in discover(paths):
        result = validate_file(path)
        if result.recipe is not None and result.doc is not None:
            found += check_models(result.doc, result.recipe, catalog, None)
    for diagnostic in found:
        warning = replace(diagnostic, severity=Severity.WARNING)
        click.echo(f"{warning.format()} (model list of {_age(catalog.fetched)})", err=True)


def _age(fetched: float) -> str:
    hours = (time.time() - fetched) / 3600
    return f"{hours:.0f} h ago" if hours >= 1 else "less than an hour ago"
