"""``transcript-runner run``: configuration, clients, executor, summary, exit code.

This is the only place that opens the network stack, so ``validate`` and
``render`` never import aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

import click

from runner.api.config import FAMILIES, ClientConfig, Limits, RetryPolicy, Timeouts
from runner.api.gateway import GatewayClient
from runner.api.hosts import rest_region
from runner.api.http import HttpClient
from runner.api.lemur import LemurClient
from runner.api.sweeps import StatusSweeper
from runner.api.transcripts import TranscriptsClient
from runner.checks import load_recipes
from runner.commands.plan import count
from runner.diagnostics import display_resolved, suggest
from runner.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from runner.execute.executor import Executor
from runner.execute.options import DEFAULT_ITEMS_IN_FLIGHT, DEFAULT_ITEMS_WORKING, RunOptions
from runner.execute.services import Reporter, Services, offline_services
from runner.items import Shard, expand
from runner.prompt.templating import TemplateEngine
from runner.recipe.model import MANIFEST_FILE, InputKind, Provider, Recipe, Task, TaskApi
from runner.recipe.prices import PriceTable, PriceTableError, by_recipe
from runner.results.manifest import load_manifest, stream_item_records
from runner.results.progress import LiveReporter, PlainReporter, summary_text
from runner.results.report import REPORT_FILE, ReportWriter
from runner.results.reports import publish, wanted
from runner.store import DEFAULT_STATE_DIR, Store

DEFAULT_OUT = Path("out")


@dataclass(frozen=True)
class RunRequest:
    recipes: Sequence[str]  # recipe files or folders
    out: Path | None = None  # DIR/<recipe>/<item>/ instead of each recipe's output.dir
    manifest: Path | None = None  # default: OUT/run.json
    timeout: float | None = None  # seconds for the whole run
    limits: Mapping[str, int] | None = None  # requests at once, per kind (--limit KIND=N)
    region: str | None = None  # us or eu
    dry_run: bool = False
    state_dir: Path | None = None  # default: .transcript-runner
    no_cache: bool = False  # ask the LLM again; transcripts are still reused
    offline: bool = False  # only the state store; a missing entry is an error
    shard: Shard | None = None
    max_audio_hours: float | None = None
    max_llm_calls: int | None = None
    progress: str = "auto"  # auto, live or plain
    junit: Path | None = None
    prices: Path | None = None  # --prices FILE, added to the recipes' `prices:`
    llm_url: str | None = None  # --llm-url: every Gateway task to this OpenAI-compatible server
    report: Path | None = None  # --report PATH; default: report.html beside the manifest
    no_report: bool = False  # --no-report


def run(request: RunRequest) -> int:
    """Run recipes against AssemblyAI; 0 when everything succeeded, 1 when something failed."""
    if not request.recipes:
        raise UsageError("name at least one recipe: transcript-runner run recipes/summaries.yaml")
    # What the region does not offer (LeMUR in the EU) is refused before anything is
    # sent or transcribed, as `validate --region` says it.
    recipes = load_recipes(request.recipes, *rest_region(request.region, os.environ))
    if request.llm_url:
        recipes = [on_server(recipe, request.llm_url) for recipe in recipes]
    if request.dry_run:
        click.echo(_dry_run_text(recipes, request.state_dir or DEFAULT_STATE_DIR))
        return EXIT_OK
    if request.max_audio_hours is not None or request.max_llm_calls is not None:
        _check_budget(recipes, request)
    return _execute(recipes, request)


LLM_KEY_ENV = "TRANSCRIPT_RUNNER_LLM_KEY"
LLM_STRUCTURED_ENV = "TRANSCRIPT_RUNNER_LLM_STRUCTURED_OUTPUT"


def on_server(recipe: Recipe, url: str) -> Recipe:
    """``recipe`` with every task it would send to AssemblyAI's LLM Gateway sent to the
    OpenAI-compatible server at ``url`` instead, unchanged otherwise (its key, if any,
    from TRANSCRIPT_RUNNER_LLM_KEY). A task that needs what only the Gateway does is a
    usage error, naming its line."""
    structured = os.environ.get(LLM_STRUCTURED_ENV, "json_schema")
    if structured not in ("json_schema", "json_object", "none"):
        raise UsageError(
            f"{LLM_STRUCTURED_ENV}={structured!r}: use json_schema, json_object or none"
        )
    server = Provider("llm-url", url.rstrip("/"), LLM_KEY_ENV, structured_output=structured)
    tasks = {}
    for name, task in recipe.tasks.items():
        if task.api is TaskApi.GATEWAY and task.asks_model and task.provider is None:
            needs_gateway = _gateway_features(task)
            if needs_gateway:
                raise UsageError(
                    f"{recipe.display}:{task.line}: task {name!r} uses "
                    f"{', '.join(needs_gateway)}, which only AssemblyAI's LLM Gateway has; "
                    "it cannot run on --llm-url"
                )
            task = replace(task, provider=server)
        tasks[name] = task
    return replace(recipe, tasks=MappingProxyType(tasks))


def _gateway_features(task: Task) -> list[str]:
    used = [
        ("inject_transcript", task.inject_transcript),
        ("gateway_post_processing", bool(task.gateway_post_processing)),
        ("fallbacks", bool(task.fallbacks)),
        ("fallback_config", task.fallback_config is not None),
        ("send_as: prompt", task.send_as_prompt),
    ]
    return [f"`{key}`" for key, on in used if on]


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
        all(_here(recipe, spec.kind) for spec in recipe.inputs)
        and not any(_asks_assemblyai(task) for task in recipe.tasks.values())
        for recipe in recipes
    )


def _asks_assemblyai(task: Task) -> bool:
    """Whether a task sends its prompt to AssemblyAI (not an export, not a provider's)."""
    return task.asks_model and task.provider is None


def _private_without_key(recipes: Sequence[Recipe]) -> bool:
    """No key, and every recipe transcribes on this machine (a recipe that uses
    AssemblyAI for its transcripts, or only reads saved ones, still needs the key: a CI
    job that lost its secret must fail, not skip its prompts)."""
    if os.environ.get("ASSEMBLYAI_API_KEY", "").strip() or _in_ci():
        return False
    return all(
        recipe.local_engine is not None and all(_here(recipe, s.kind) for s in recipe.inputs)
        for recipe in recipes
    )


def _in_ci() -> bool:
    """CI systems set CI (GitHub Actions, GitLab, CircleCI, Travis, Buildkite...): there a
    missing key is a lost secret, and LLM tasks must fail rather than not run."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _here(recipe: Recipe, kind: InputKind) -> bool:
    """Whether an input's transcript comes without AssemblyAI."""
    local = recipe.local_engine is not None
    return kind is InputKind.TRANSCRIPT_FILE or (local and kind is InputKind.FILE)


def _execute(recipes: Sequence[Recipe], request: RunRequest) -> int:
    """Run ``recipes``; print the summary; write the CI reports; return the exit code."""
    # Offline replays, and exports of saved transcripts, need no key: nothing is sent.
    # A placeholder keeps the client configuration uniform; nothing ever sends it.
    keyless = request.offline or _sends_nothing(recipes)
    llm_unavailable = None
    if not keyless and _private_without_key(recipes):
        # Transcribed on this machine, with no key: only the LLM tasks would need one.
        # Run the rest, and say once why those did not run.
        keyless, llm_unavailable = True, NO_LLM_MESSAGE
    environ = {**os.environ, "ASSEMBLYAI_API_KEY": "offline"} if keyless else None
    config = ClientConfig.from_env(request.region, environ=environ)
    limits = merged_limits(recipes, request.limits or {})
    config = replace(
        config,
        limits=limits.limits,
        timeouts=_timeouts(config, recipes),
        retry=_retry(config, recipes),
    )
    manifest = request.manifest or (request.out or DEFAULT_OUT) / MANIFEST_FILE
    options = RunOptions(
        out=request.out,
        manifest=manifest,
        timeout=request.timeout,
        transcript_deadline=_transcript_deadline(recipes),
        items_in_flight=limits.items,
        items_working=limits.working,
        use_cache=not request.no_cache,
        offline=request.offline,
        shard=request.shard,
        prices=run_prices(recipes, request.prices),
        llm_unavailable=llm_unavailable,
    )
    report_path = _report_path(request, manifest)
    reporter = _reporter(request.progress)
    executor: Executor | None = None
    sweeper: StatusSweeper | None = None

    async def main(store: Store) -> None:
        nonlocal executor, sweeper
        async with HttpClient(config) as http, contextlib.AsyncExitStack() as servers:
            _stop_on_signals(http)
            services = offline_services() if request.offline else _services(http, config)
            providers = {
                provider.key: GatewayClient(
                    await servers.enter_async_context(_provider_client(provider, config))
                )
                for provider in _providers(recipes)
            }
            services = replace(services, providers=providers)
            if isinstance(services.transcripts, TranscriptsClient):
                sweeper = services.transcripts.sweeper
            executor = Executor(services, options, reporter, store)
            try:
                await executor.run(recipes)
            finally:
                if sweeper is not None:
                    await sweeper.close()

    interrupted = False
    with _tuned_garbage_collection(), Store(request.state_dir or DEFAULT_STATE_DIR) as store:
        try:
            asyncio.run(main(store))
        except (KeyboardInterrupt, asyncio.CancelledError):
            interrupted = True
    report, report_failed = _report_written(executor, report_path)
    failed = _print_summary(executor, sweeper, report) or report_failed
    if interrupted:
        print(
            "Interrupted: finished outputs are kept and the manifest lists what was left. "
            "A rerun reattaches to the transcriptions already submitted and reuses cached "
            "replies, so it only does what is missing.",
            file=sys.stderr,
        )
    reported = _ci_reports(executor, request.junit)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed or not reported else EXIT_OK


@contextmanager
def _tuned_garbage_collection() -> Iterator[None]:
    """Keep the collector from stalling the event loop in long runs; as it was after.

    Measured at 10,000 items: full collections of the objects a run keeps (modules,
    recipes, items, connections) took 80 to 160 ms each, freed nothing, and came
    every few seconds, each one a stall of every request. What exists before the run
    is frozen out of collections, and collections come less often (memory stayed at
    about 100 MB: a run makes few reference cycles).
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _providers(recipes: Sequence[Recipe]) -> list[Provider]:
    """The OpenAI-compatible servers the recipes declare or their tasks use (--llm-url's),
    each once."""
    found: dict[str, Provider] = {}
    for recipe in recipes:
        for provider in recipe.providers.values():
            found.setdefault(provider.key, provider)
        for task in recipe.tasks.values():
            if task.provider is not None:
                found.setdefault(task.provider.key, task.provider)
    return list(found.values())


def _provider_client(provider: Provider, config: ClientConfig) -> HttpClient:
    """A client of its own for ``provider``: its URL, its key (``Bearer``) or none,
    never the AssemblyAI key, and the same limits and retry policy."""
    key = os.environ.get(provider.api_key_env, "").strip() if provider.api_key_env else ""
    # A server of one's own that is down or broken fails its tasks in seconds, not the
    # two minutes AssemblyAI's retry budget allows.
    retry = replace(config.retry, max_retries=2, budget=15.0)
    own = replace(config, api_key="", gateway_url=provider.base_url, retry=retry)
    authorization = f"Bearer {key}" if key else None
    return HttpClient(own, authorization=authorization, assemblyai=False, headers=provider.headers)


def _services(http: HttpClient, config: ClientConfig) -> Services:
    """AssemblyAI's services over ``http``."""
    return Services(
        transcripts=TranscriptsClient(http, config),
        gateway=GatewayClient(http, config),
        lemur=LemurClient(http, config),
    )


def _stop_on_signals(http: HttpClient) -> None:
    """Ctrl-C and SIGTERM (how CI systems cancel a job): stop sending, keep, report.

    Nothing more is sent from the first signal on: a request still waiting for its
    turn is dropped (a submission's intent is closed, as nothing left). A submission on
    the wire is waited for (30 s at most) so its job is recorded, and an LLM reply on
    the wire (5 s at most) so it is cached; other requests are abandoned.
    Cancelling the main task lets the executor close the manifest and write the reports
    instead of leaving ``run.json.partial``. A second signal changes nothing: the
    ledger writes it would cut short are what keeps the rerun from paying twice.
    """
    task = asyncio.current_task()
    if task is None:
        return
    stopping: list[int] = []

    def stop(signum: int) -> None:
        if stopping:
            print(
                "Stopping: waiting (at most 30 s) for submissions already sent, so that "
                "their jobs are recorded and the rerun does not pay for them again.",
                file=sys.stderr,
            )
            return
        stopping.append(signum)
        http.stop_sending()
        task.cancel()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop, signum)
        except (NotImplementedError, RuntimeError):  # not on this platform or thread
            return


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
    # holds a transcript. Waiting items are cheap, so `items` bounds only them.
    working = max(DEFAULT_ITEMS_WORKING, (limits.llm + limits.lemur) * 3 // 2)
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


def _reporter(progress: str) -> Reporter:
    live = progress == "live" or (progress == "auto" and sys.stderr.isatty())
    return LiveReporter() if live else PlainReporter()


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


def _report_path(request: RunRequest, manifest: Path) -> Path | None:
    """Where report.html goes (--report, or beside the manifest); None with --no-report.
    A path that is the manifest's own is refused before anything runs."""
    if request.no_report:
        return None
    path = request.report or manifest.with_name(REPORT_FILE)
    if path.resolve() == manifest.resolve():
        raise UsageError(f"--report {path} is the manifest itself; give the report another path")
    return path


def _report_written(executor: Executor | None, path: Path | None) -> tuple[str | None, bool]:
    """report.html, from the manifest as written (so it says what run.json says), read
    an item at a time: where it went (as the summary shows it), and whether writing it
    failed (said here; the run's results are all kept)."""
    if path is None or executor is None or executor.outcome is None:
        return None, False
    outcome = executor.outcome
    report = ReportWriter(path, outcome.writer.header.get("recipes") or ())
    try:
        for record in stream_item_records(outcome.manifest):
            report.add(record)
    except (OSError, ValueError) as exc:  # run.json unreadable: it was just written
        report.discard()
        print(f"error: the report could not be written: {exc}", file=sys.stderr)
        return None, True
    written = report.close(outcome.writer.summary)
    if written is None:
        print(f"error: the report could not be written: {report.problem}", file=sys.stderr)
        return None, True
    return display_resolved(written), False


def _print_summary(
    executor: Executor | None, sweeper: StatusSweeper | None, report: str | None = None
) -> bool:
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
            status_pages=sweeper.requests if sweeper else 0,
            peak_budget_share=sweeper.peak_budget_share if sweeper else 0.0,
            tables=[display_resolved(path) for path in outcome.tables],
            table_problem=outcome.table_problem,
            priced=executor.options.prices is not None,
            report=report,
            failures_shown=True,
        ),
        file=sys.stderr,
    )
    return outcome.failed


def _check_budget(recipes: Sequence[Recipe], request: RunRequest) -> None:
    """Refuse to start a run that would exceed a budget (it is counted like `plan`)."""
    max_llm_calls, max_audio_hours = request.max_llm_calls, request.max_audio_hours
    plan = count(
        recipes,
        request.state_dir or DEFAULT_STATE_DIR,
        request.shard,
        use_cache=not request.no_cache,
    )
    if max_llm_calls is not None and plan.calls > max_llm_calls:
        raise UsageError(
            f"this run would send {plan.calls} LLM calls ({plan.cached} more are cached), "
            f"over --max-llm-calls {max_llm_calls}; nothing was sent"
        )
    hours = plan.submitted_audio_hours
    if max_audio_hours is not None and hours > max_audio_hours:
        raise UsageError(
            f"this run would transcribe {hours:.2f} h ({hours * 60:.1f} min) of audio, over "
            "--max-audio-hours "
            f"{max_audio_hours:g}; nothing was sent"
        )
    if max_audio_hours is not None and plan.unknown_submissions:
        click.echo(
            f"warning: {plan.unknown_submissions} recording(s) to transcribe have a length "
            "only known after transcription (URLs and non-WAV files); --max-audio-hours "
            "cannot count them",
            err=True,
        )


def _dry_run_text(recipes: Sequence[Recipe], state_dir: Path) -> str:
    """What a run would do, without a network call or an API key: the same account of
    what is to send and what is cached as ``plan`` gives (it is ``plan``'s count)."""
    planned = {(i.recipe, i.item): i for i in count(recipes, state_dir, None).items}
    lines: list[str] = []
    for recipe in recipes:
        engine = TemplateEngine(recipe.base_dir)
        items = expand(recipe, engine)
        tasks = sum(1 for task in recipe.tasks.values() if task.asks_model)
        lines.append(f"{recipe.display}: {len(items)} item(s) × {tasks} task(s)")
        local = recipe.local_engine is not None
        for item in items:
            step = {
                InputKind.URL: "transcribe the URL",
                InputKind.FILE: "transcribe here" if local else "upload, then transcribe",
                InputKind.TRANSCRIPT_ID: "fetch the transcript",
                InputKind.TRANSCRIPT_FILE: "read the saved transcript",
            }[item.kind]
            plan = planned.get((recipe.name, item.name))
            if plan is not None and plan.transcription == "reuse":
                step = "reuse the transcript in the ledger"
            calls = (
                f"{plan.calls} LLM call(s) to send, {plan.cached} cached"
                if plan is not None
                else f"{tasks} LLM call(s)"
            )
            lines.append(f"  {item.name}: {step}; {calls}  ({item.source})")
    lines.append("Dry run: nothing was sent.")
    return "\n".join(lines)


LIMIT_KINDS = ("items", *FAMILIES)  # the item pool, then each endpoint family's requests


def parse_limits(values: Sequence[str]) -> dict[str, int]:
    """``["llm=4", "polls=8"]`` → ``{"llm": 4, "polls": 8}``; a usage error otherwise."""
    limits: dict[str, int] = {}
    for value in values:
        kind, _, number = value.partition("=")
        kind = kind.strip()
        if kind not in LIMIT_KINDS:
            raise UsageError(
                f"--limit {value}: unknown kind {kind!r}{suggest(kind, LIMIT_KINDS)}; "
                f"kinds: {', '.join(LIMIT_KINDS)}"
            )
        if not number.strip().isdigit() or int(number) < 1:
            raise UsageError(f"--limit {value}: give a whole number of at least 1, e.g. {kind}=4")
        limits[kind] = int(number)
    return limits
