"""What a run is asked to do, as the executor reads it: the command's options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.folders import DEFAULT_MANIFEST
from runner.items import Shard
from runner.recipe.prices import PriceTable

# Items under way at once: most of them only wait for their jobs, holding an id each
# (a few KB), so the pool can be large enough to keep any account's limits busy.
DEFAULT_ITEMS_IN_FLIGHT = 1000
# Items holding their transcript at once, while their tasks run: enough to keep the
# LLM slots full (each item has one to a few calls in flight), few enough that memory
# stays flat however many items wait. The command sizes it from the `llm` limit.
DEFAULT_ITEMS_WORKING = 32
# The most items holding a transcript at once, however high the LLM ceiling.
MOST_WORKING = 192


@dataclass(frozen=True)
class RunOptions:
    out: Path | None = None  # --out: DIR/<recipe>/<item> instead of the recipe's output.dir
    manifest: Path = DEFAULT_MANIFEST
    timeout: float | None = None  # --timeout for the whole run, seconds
    transcript_deadline: float | None = None  # per transcript; None: the client's default
    items_in_flight: int = DEFAULT_ITEMS_IN_FLIGHT
    items_working: int = DEFAULT_ITEMS_WORKING  # of those, holding transcripts at once
    use_cache: bool = True  # --no-cache: ask the LLM again (the ledger is always used)
    offline: bool = False  # --offline: everything must come from the state store
    shard: Shard | None = None  # --shard K/N: only this job's share of the items
    # Only these items of each recipe, by recipe name (`review` runs its sample); a
    # recipe not named runs every item.
    only_items: Mapping[str, frozenset[str]] | None = None
    # Why LLM tasks cannot run (a first run with no key and no local server): they are
    # recorded as not run, which fails nothing. None: they run.
    llm_unavailable: str | None = None
    # Each recipe's `prices:` and --prices; None: no costs are claimed.
    prices: Mapping[str, PriceTable] | None = None
    # Context windows the LLM Gateway's model list gives (a kept `validate --online`),
    # by model; the recipe's `context_window:` and the documented table come after.
    context_windows: Mapping[str, int] | None = None
