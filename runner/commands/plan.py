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
from runner.checks.models import check_models, gateway_url, kept_catalog
from runner.diagnostics import Diagnostic, Severity
from runner.errors import EXIT_OK, ItemError, StoreError, UsageError
from runner.execute.forecast import forecast, merged_rates, run_timeout
from runner.execute.planning import Plan, make_plan, plan_json, plan_text
from runner.items import Shard
from runner.recipe.model import Recipe
from runner.recipe.prices import PriceTableError, by_recipe
from runner.results.paths import check_paths
from runner.store import DEFAULT_STATE_DIR, Store


@dataclass(frozen=True)
class PlanRequest:
    recipes: Sequence[str]
    state_dir: Path | None = None  # the ledger and cache a run would use
    shard: Shard | None = None  # only this CI job's share of the items
    prices: Path | None = None  # the user's price table, to estimate costs
    fmt: str = "text"  # text or json
    deadline: float | None = None  # seconds the run may take (else timeouts.run)
    per_item: bool = False  # a line per item (--items, -v)


def plan(request: PlanRequest) -> int:
    """Print what a run would do: transcriptions, LLM calls, cached work, audio, tokens."""
    if not request.recipes:
        raise UsageError("name at least one recipe: transcript-runner plan recipes/")
    check_paths(read_folders={"--state-dir": request.state_dir})
    # plan has no --region; an ASSEMBLYAI_BASE_URL of the EU is refused as `run` refuses it.
    recipes = load_recipes(request.recipes, *rest_region(None, os.environ))
    state_dir = request.state_dir or DEFAULT_STATE_DIR
    _warn_about_models(request.recipes, state_dir)
    counted = count(recipes, state_dir, request.shard)
    try:
        table = by_recipe({recipe.name: recipe.prices for recipe in recipes}, request.prices)
    except PriceTableError as exc:
        raise UsageError(f"--prices {exc}") from None
    deadline = request.deadline if request.deadline is not None else run_timeout(recipes)
    ahead = forecast(
        counted.demand(),
        recipe_rates=merged_rates(recipes),
        learned=learned_rates(state_dir),
        deadline=deadline,
    )
    if request.fmt == "json":
        click.echo(json.dumps(plan_json(counted, table, ahead), indent=2))
    else:
        click.echo(plan_text(counted, table, ahead, per_item=request.per_item))
    return EXIT_OK


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
    store = Store.existing(state_dir)
    try:
        return make_plan(recipes, store, shard, use_cache=use_cache)
    except (ItemError, StoreError) as exc:  # an unreadable input, a damaged store entry
        raise UsageError(exc.message) from None
    finally:
        if store is not None:
            store.close()


def _warn_about_models(paths: Sequence[str], state_dir: Path) -> None:
    """Models the Gateway's catalog does not list, when `validate --online` kept one:
    as warnings, since the catalog may be old (plan sends nothing, fetches nothing)."""
    store = Store.existing(state_dir)
    try:
        catalog = kept_catalog(gateway_url(None, os.environ), store)
    finally:
        if store is not None:
            store.close()
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
