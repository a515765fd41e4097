"""A whole ``transcript-runner run``: configuration, clients, executor, summary, exit code.

This is the only place that opens the network stack, so ``validate`` and
``render`` never import aiohttp.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from runner.api.gateway import GatewayClient
from runner.api.http import ClientConfig, HttpClient, Limits, Timeouts
from runner.api.lemur import LemurClient
from runner.api.transcripts import TranscriptsClient
from runner.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, NotStored
from runner.execute.executor import DEFAULT_ITEMS_IN_FLIGHT, Executor, RunOptions
from runner.execute.services import Reporter, Services
from runner.items import Shard
from runner.recipe.model import MANIFEST_FILE, Recipe
from runner.results.progress import LiveReporter, PlainReporter, summary_text
from runner.results.reports import load_manifest, publish, wanted
from runner.store import DEFAULT_STATE_DIR, Store

DEFAULT_OUT = Path("out")


def execute(
    recipes: Sequence[Recipe],
    *,
    out: Path | None,
    manifest: Path | None,
    timeout: float | None,
    limit_overrides: Mapping[str, int],
    region: str | None,
    progress: str,
    state_dir: Path | None = None,
    use_cache: bool = True,
    offline: bool = False,
    junit: Path | None = None,
    shard: Shard | None = None,
) -> int:
    """Run ``recipes``; print the summary; write the CI reports; return the exit code."""
    # Offline replays need no key: nothing is sent. A placeholder keeps the client
    # configuration uniform; the offline services never use it.
    environ = {**os.environ, "ASSEMBLYAI_API_KEY": "offline"} if offline else None
    config = ClientConfig.from_env(region, environ=environ)
    store = Store(state_dir or DEFAULT_STATE_DIR)
    limits = merged_limits(recipes, limit_overrides)
    config = replace(config, limits=limits.limits, timeouts=_timeouts(config, recipes))
    options = RunOptions(
        out=out,
        manifest=manifest or (out or DEFAULT_OUT) / MANIFEST_FILE,
        timeout=timeout,
        transcript_deadline=_transcript_deadline(recipes),
        items_in_flight=limits.items,
        use_cache=use_cache,
        offline=offline,
        shard=shard,
    )
    holder: dict[str, HttpClient] = {}
    reporter = _reporter(progress, holder)
    executor: Executor | None = None

    async def main() -> None:
        nonlocal executor
        _stop_on_sigterm()
        async with HttpClient(config) as http:
            holder["http"] = http
            services = (
                offline_services()
                if offline
                else Services(
                    transcripts=TranscriptsClient(http, config),
                    gateway=GatewayClient(http, config),
                    lemur=LemurClient(http, config),
                )
            )
            executor = Executor(services, options, reporter, store)
            await executor.run(recipes)

    try:
        asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        store.close()
        _print_summary(executor)
        print(
            "Interrupted: finished outputs are kept and the manifest lists what was left. "
            "A rerun reattaches to the transcriptions already submitted and reuses cached "
            "replies, so it only does what is missing.",
            file=sys.stderr,
        )
        _ci_reports(executor, junit)
        return EXIT_INTERRUPTED
    store.close()
    outcome = _print_summary(executor)
    reported = _ci_reports(executor, junit)
    return EXIT_FAILED if outcome or not reported else EXIT_OK


class _Offline:
    """Services for ``--offline``: any call means the store lacked something."""

    def __getattr__(self, name: str) -> Any:
        async def refuse(*args: Any, **kwargs: Any) -> Any:
            raise NotStored(f"--offline: {name} would need the network")

        return refuse


def offline_services() -> Services:
    offline: Any = _Offline()
    return Services(transcripts=offline, gateway=offline, lemur=offline)


def _stop_on_sigterm() -> None:
    """Treat SIGTERM (how CI systems cancel a job) like Ctrl-C: stop, keep, report.

    Cancelling the main task lets the executor close the manifest and write the
    reports before the process ends, instead of leaving ``run.json.partial``.
    """
    task = asyncio.current_task()
    if task is None:
        return
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    except (NotImplementedError, RuntimeError):  # not on this platform or thread
        return


class _MergedLimits:
    def __init__(self, limits: Limits, items: int) -> None:
        self.limits = limits
        self.items = items


def merged_limits(recipes: Sequence[Recipe], overrides: Mapping[str, int]) -> _MergedLimits:
    """The strictest limit any recipe sets for each kind, then the command line's."""
    chosen: dict[str, int] = {}
    for recipe in recipes:
        for kind, value in recipe.limits.items():
            chosen[kind] = min(value, chosen.get(kind, value))
    chosen.update(overrides)
    items = chosen.pop("items", DEFAULT_ITEMS_IN_FLIGHT)
    return _MergedLimits(replace(Limits(), **chosen), items)


def _timeouts(config: ClientConfig, recipes: Sequence[Recipe]) -> Timeouts:
    requests = [r.timeouts["request"] for r in recipes if "request" in r.timeouts]
    if not requests:
        return config.timeouts
    return replace(config.timeouts, read=min(requests))


def _transcript_deadline(recipes: Sequence[Recipe]) -> float | None:
    deadlines = [r.timeouts["transcript"] for r in recipes if "transcript" in r.timeouts]
    return min(deadlines) if deadlines else None


def _reporter(progress: str, holder: Mapping[str, HttpClient]) -> Reporter:
    live = progress == "live" or (progress == "auto" and sys.stderr.isatty())
    if not live:
        return PlainReporter()

    def snapshot() -> Mapping[str, int]:
        http = holder.get("http")
        return http.snapshot() if http is not None else {}

    return LiveReporter(snapshot)


def _ci_reports(executor: Executor | None, junit: Path | None) -> bool:
    """JUnit, step summary and annotations, from the manifest as written to disk (so
    they say exactly what run.json says); False when one could not be written."""
    if executor is None or executor.outcome is None or not wanted(junit, os.environ):
        return True
    manifest = load_manifest(executor.outcome.manifest)
    problems = publish(manifest, junit=junit, environ=os.environ)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return not problems


def _print_summary(executor: Executor | None) -> bool:
    """Print the summary; True when anything failed."""
    if executor is None or executor.outcome is None:
        return True
    outcome = executor.outcome
    print(
        summary_text(
            outcome.writer.totals,
            outcome=outcome.outcome,
            wall=outcome.wall_seconds,
            manifest=str(outcome.manifest),
            left=outcome.not_started,
        ),
        file=sys.stderr,
    )
    return outcome.failed
