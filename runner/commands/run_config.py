"""A run's configuration, from its recipes and the command's options: the recipes as
they run (``--llm-url``), whether a key is needed, the clients' limits, timeouts and
retry budget, and what the executor is asked to do."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from runner.api.config import ClientConfig, Limits, RetryPolicy, Timeouts, read_api_key
from runner.errors import UsageError
from runner.execute.forecast import merged_rates, run_timeout
from runner.execute.options import (
    DEFAULT_ITEMS_IN_FLIGHT,
    DEFAULT_ITEMS_WORKING,
    MOST_WORKING,
    RunOptions,
)
from runner.items import Shard, list_columns
from runner.recipe.model import InputKind, InputSpec, Recipe, Task
from runner.recipe.prices import PriceTable, PriceTableError, by_recipe


@dataclass(frozen=True)
class RunConfig:
    """How the clients talk to the services, and what the executor is asked to do."""

    client: ClientConfig
    options: RunOptions


def configure(
    recipes: Sequence[Recipe],
    *,
    manifest: Path,
    out: Path | None = None,
    region: str | None = None,
    limits: Mapping[str, int] | None = None,
    timeout: float | None = None,
    use_cache: bool = True,
    offline: bool = False,
    shard: Shard | None = None,
    prices: Path | None = None,
) -> RunConfig:
    """The run's configuration; the strictest of the recipes' settings, then the
    command line's."""
    # Offline replays, and exports of saved transcripts, need no key: nothing is sent,
    # so the key is not read and the client is given none ("").
    keyless = offline or _sends_nothing(recipes)
    api_key = None if keyless else read_api_key()
    llm_unavailable = None
    if not keyless and _private_without_key(recipes, api_key):
        # Transcribed on this machine, with no key: only the LLM tasks would need one.
        # Run the rest, and say once why those did not run.
        keyless, llm_unavailable = True, NO_LLM_MESSAGE
    config = ClientConfig.for_key("" if keyless else api_key, region)
    merged = merged_limits(recipes, limits or {})
    config = replace(
        config,
        limits=merged.limits,
        llm_per_minute=merged_rates(recipes),
        timeouts=_timeouts(config, recipes),
        retry=_retry(config, recipes),
    )
    options = RunOptions(
        out=out,
        manifest=manifest,
        timeout=timeout if timeout is not None else run_timeout(recipes),
        transcript_deadline=_transcript_deadline(recipes),
        items_in_flight=merged.items,
        items_working=merged.working,
        use_cache=use_cache,
        offline=offline,
        shard=shard,
        prices=run_prices(recipes, prices),
        llm_unavailable=llm_unavailable,
    )
    return RunConfig(config, options)


def run_prices(recipes: Sequence[Recipe], file: Path | None) -> dict[str, PriceTable] | None:
    """Each recipe's price table: its `prices:` and --prices FILE."""
    try:
        return by_recipe({recipe.name: recipe.prices for recipe in recipes}, file)
    except PriceTableError as exc:
        raise UsageError(f"--prices {exc}") from None


NO_LLM_MESSAGE = (
    "the LLM tasks need an LLM: set ASSEMBLYAI_API_KEY to run them on AssemblyAI's LLM "
    "Gateway, or pass --llm-url http://127.0.0.1:8080/v1 to run them on a local "
    "OpenAI-compatible server (the transcripts and exports need neither)"
)


def _sends_nothing(recipes: Sequence[Recipe]) -> bool:
    """Every input a saved transcript, or a file transcribed on this machine, and every
    task an export: no request at all."""
    return all(
        all(_here(recipe, spec) for spec in recipe.inputs)
        and not any(_asks_assemblyai(task) for task in recipe.tasks.values())
        for recipe in recipes
    )


def _asks_assemblyai(task: Task) -> bool:
    """Whether a task sends its prompt (or a judge of its checks asks) to AssemblyAI."""
    judged = any(e.judge is not None and e.judge.provider is None for e in task.expectations)
    return (task.asks_model and task.provider is None) or judged


def _private_without_key(recipes: Sequence[Recipe], api_key: str | None) -> bool:
    """No key, and every recipe transcribes on this machine (a recipe that uses
    AssemblyAI for its transcripts, or only reads saved ones, still needs the key: a CI
    job that lost its secret must fail, not skip its prompts)."""
    if api_key or _in_ci():
        return False
    return all(
        _local_only(recipe) and all(_here(recipe, s) for s in recipe.inputs) for recipe in recipes
    )


def _in_ci() -> bool:
    """CI systems set CI (GitHub Actions, GitLab, CircleCI, Travis, Buildkite...): there a
    missing key is a lost secret, and LLM tasks must fail rather than not run."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _here(recipe: Recipe, spec: InputSpec) -> bool:
    """Whether an input's transcripts come without AssemblyAI: saved ones, files
    transcribed on this machine, or a list whose source columns are only those."""
    local = {InputKind.TRANSCRIPT_FILE} | ({InputKind.FILE} if _local_only(recipe) else set())
    if spec.kind is not InputKind.LIST:
        return spec.kind in local
    sources = {kind.value for kind in InputKind if kind is not InputKind.LIST}
    columns = sources.intersection(list_columns(recipe, spec))
    return bool(columns) and columns <= {kind.value for kind in local}


def _local_only(recipe: Recipe) -> bool:
    """Whether every block of its ``transcription:`` (engines compared included)
    transcribes without AssemblyAI."""
    compared = all(block.local_engine is not None for block in recipe.compared)
    return recipe.local_engine is not None and compared


@dataclass(frozen=True)
class _MergedLimits:
    limits: Limits
    items: int  # items under way at once (most of them waiting for their jobs)
    working: int  # of those, holding a transcript while their tasks run


def merged_limits(recipes: Sequence[Recipe], overrides: Mapping[str, int]) -> _MergedLimits:
    """The strictest limit any recipe sets for each kind, then the command line's."""
    chosen: dict[str, int] = {}
    for recipe in recipes:
        for kind, value in recipe.limits.items():
            chosen[kind] = min(value, chosen.get(kind, value))
    chosen.update(overrides)
    limits = replace(Limits(), **{k: v for k, v in chosen.items() if k != "items"})
    items = chosen.get("items", DEFAULT_ITEMS_IN_FLIGHT)
    # Enough items working to keep every LLM and LeMUR slot busy (an item has one or
    # two calls in flight at a time, and some time between them), and no more: each
    # holds a transcript. Waiting items are cheap, so `items` bounds only them. The
    # limits adapt up to their ceilings (256 LLM calls by default); past MOST_WORKING
    # items a run's memory would grow with the ceiling, not with what the server takes.
    working = max(DEFAULT_ITEMS_WORKING, min(MOST_WORKING, (limits.llm + limits.lemur) * 3 // 2))
    return _MergedLimits(limits, items, min(items, working))


def _timeouts(config: ClientConfig, recipes: Sequence[Recipe]) -> Timeouts:
    """The recipes' `timeouts:` (the strictest of each), over the defaults."""
    chosen = {
        field: min(values)
        for key, field in (("request", "read"), ("llm", "llm"))
        if (values := [r.timeouts[key] for r in recipes if key in r.timeouts])
    }
    return replace(config.timeouts, **chosen)


def _retry(config: ClientConfig, recipes: Sequence[Recipe]) -> RetryPolicy:
    """The recipes' retry budget (the strictest), over the default."""
    budgets = [r.timeouts["retry"] for r in recipes if "retry" in r.timeouts]
    return replace(config.retry, budget=min(budgets)) if budgets else config.retry


def _transcript_deadline(recipes: Sequence[Recipe]) -> float | None:
    deadlines = [r.timeouts["transcript"] for r in recipes if "transcript" in r.timeouts]
    return min(deadlines) if deadlines else None
