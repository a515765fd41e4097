"""``transcript-runner run``: load the recipes, configure the run (:mod:`.run_config`),
execute it on its services (:mod:`.run_services`), then print the summary and write
the reports. The exit code comes from what the run came to; printing decides nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import click

from runner.api.families import LIMIT_KINDS
from runner.api.hosts import rest_region
from runner.checks import load_recipes
from runner.checks.models import kept_windows
from runner.commands.plan import count, learned_rates
from runner.commands.run_config import configure
from runner.commands.run_services import Ran, execute
from runner.diagnostics import display_resolved, suggest
from runner.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from runner.execute.forecast import forecast, merged_rates, run_timeout, seconds_per_item
from runner.execute.plan_text import forecast_text
from runner.execute.planning import GROUP
from runner.execute.services import ProgressDisplay
from runner.folders import DEFAULT_OUT, MANIFEST_FILE
from runner.items import Shard, expand
from runner.prompt.templating import TemplateEngine
from runner.recipe.llm_server import llm_server, on_server, unmapped_model_warnings
from runner.recipe.model import InputKind, Recipe
from runner.recipe.variables import command_line_vars
from runner.results.ci import publish, wanted
from runner.results.html_report import REPORT_FILE, ReportWriter
from runner.results.manifest import load_manifest, stream_item_records
from runner.results.paths import check_paths
from runner.results.progress import LiveProgress, PlainProgress, summary_text
from runner.results.recorder import RunOutcome
from runner.store import DEFAULT_STATE_DIR


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
    llm_model: Sequence[str] = ()  # --llm-model MODEL or FROM=TO: the names it knows them by
    report: Path | None = None  # --report PATH; default: report.html beside the manifest
    no_report: bool = False  # --no-report
    var: Sequence[str] = ()  # --var NAME=VALUE, over the recipes' `vars:`
    vars_files: Sequence[Path] = ()  # --vars FILE, under --var


def run(request: RunRequest) -> int:
    """Run recipes against AssemblyAI; 0 when everything succeeded, 1 when something failed."""
    if not request.recipes:
        raise UsageError("name at least one recipe: transcript-runner run recipes/summaries.yaml")
    check_paths(
        folders={"--out": request.out, "--state-dir": request.state_dir},
        files={
            "--manifest": request.manifest,
            "--junit": request.junit,
            "--report": request.report,
        },
    )
    # What the region does not offer (LeMUR in the EU) is refused before anything is
    # sent or transcribed, as `validate --region` says it.
    variables = command_line_vars(request.vars_files, request.var)
    # What a reply needs on this machine (an embedding model) is loaded here, before
    # anything is sent: a reply the run could not finish would be paid for nothing.
    recipes = load_recipes(
        request.recipes,
        *rest_region(request.region, os.environ),
        variables,
        load_resources=not request.dry_run,
    )
    if request.llm_url:
        server = llm_server(request.llm_url, request.llm_model)
        recipes = [on_server(recipe, server) for recipe in recipes]
        for warning in unmapped_model_warnings(recipes, server):
            click.echo(f"warning: {warning}", err=True)
    elif request.llm_model:
        raise UsageError("--llm-model names models on --llm-url's server; give --llm-url too")
    if request.dry_run:
        text, too_long = _dry_run_text(recipes, request.state_dir or DEFAULT_STATE_DIR)
        click.echo(text)
        # A prompt over its model's window would be refused by the run: said as `plan`
        # says it, and the dry run fails as the run would.
        for problem in too_long:
            click.echo(f"error: {problem}", err=True)
        return EXIT_FAILED if too_long else EXIT_OK
    if request.max_audio_hours is not None or request.max_llm_calls is not None:
        _check_budget(recipes, request)
    return _execute(recipes, request)


def _execute(recipes: Sequence[Recipe], request: RunRequest) -> int:
    """Configure, execute, print the summary and write the reports; the exit code
    comes from what the run came to."""
    manifest = request.manifest or (request.out or DEFAULT_OUT) / MANIFEST_FILE
    setup = configure(
        recipes,
        manifest=manifest,
        out=request.out,
        region=request.region,
        limits=request.limits,
        timeout=request.timeout,
        use_cache=not request.no_cache,
        offline=request.offline,
        shard=request.shard,
        prices=request.prices,
    )
    state_dir = request.state_dir or DEFAULT_STATE_DIR
    # The windows of the Gateway's model list, when `validate --online` kept one.
    windows = kept_windows(request.region, state_dir)
    setup = replace(setup, options=replace(setup.options, context_windows=windows))
    report_path = _report_path(request, manifest)
    display = _progress_display(
        request.progress, seconds_per_item(recipes, learned_rates(state_dir))
    )
    ran = execute(recipes, setup, display, state_dir)
    report, report_failed = _report_written(ran.outcome, report_path)
    if ran.outcome is not None:
        _print_summary(ran, ran.outcome, report, priced=setup.options.prices is not None)
    if ran.interrupted:
        print(
            "Interrupted: finished outputs are kept and the manifest lists what was left. "
            "A rerun reattaches to the transcriptions already submitted and reuses cached "
            "replies, so it only does what is missing.",
            file=sys.stderr,
        )
    reported = _ci_reports(ran.outcome, request.junit)
    return _exit_code(ran, reports_written=reported and not report_failed)


def _exit_code(ran: Ran, *, reports_written: bool) -> int:
    """Interrupted; else failed when anything short of complete success happened (or
    a report could not be written); else OK."""
    if ran.interrupted:
        return EXIT_INTERRUPTED
    failed = ran.outcome is None or ran.outcome.failed
    return EXIT_FAILED if failed or not reports_written else EXIT_OK


def _progress_display(progress: str, per_item: float | None) -> ProgressDisplay:
    """The live line or plain lines, saying the time left by the forecast's rate."""
    live = progress == "live" or (progress == "auto" and sys.stderr.isatty())
    return LiveProgress(per_item) if live else PlainProgress(per_item=per_item)


def _ci_reports(outcome: RunOutcome | None, junit: Path | None) -> bool:
    """JUnit, step summary and annotations, from the manifest as written to disk (so
    they say exactly what run.json says); False when one could not be written."""
    if outcome is None or not wanted(junit, os.environ):
        return True
    manifest = load_manifest(outcome.manifest)
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


def _report_written(outcome: RunOutcome | None, path: Path | None) -> tuple[str | None, bool]:
    """report.html, from the manifest as written (so it says what run.json says), read
    an item at a time: where it went (as the summary shows it), and whether writing it
    failed (said here; the run's results are all kept)."""
    if path is None or outcome is None:
        return None, False
    report = ReportWriter(path, outcome.writer.header.get("recipes") or ())
    try:
        for record in stream_item_records(outcome.manifest):
            report.add(record)
    except (OSError, ValueError) as exc:  # run.json unreadable: it was just written
        report.discard()
        print(f"error: the report could not be written: {exc}", file=sys.stderr)
        return None, True
    keep = outcome.writer.kept_path.with_suffix(".html")
    written = report.close(outcome.writer.summary, keep=keep)
    if written is None:
        print(f"error: the report could not be written: {report.problem}", file=sys.stderr)
        return None, True
    return display_resolved(written), False


def _print_summary(ran: Ran, outcome: RunOutcome, report: str | None, *, priced: bool) -> None:
    print(
        summary_text(
            outcome.writer.totals,
            outcome=outcome.outcome,
            wall=outcome.wall_seconds,
            manifest=str(outcome.manifest),
            left=outcome.not_started,
            status_pages=ran.status_pages,
            peak_budget_share=ran.peak_budget_share,
            tables=[display_resolved(path) for path in outcome.tables],
            table_problem=outcome.table_problem,
            priced=priced,
            report=report,
            failures_shown=True,
            retries=ran.retries,
        ),
        file=sys.stderr,
    )


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


def _dry_run_text(recipes: Sequence[Recipe], state_dir: Path) -> tuple[str, list[str]]:
    """What a run would do, without a network call or an API key: the same account of
    what is to send and what is cached as ``plan`` gives (it is ``plan``'s count), and
    the prompts the run would refuse as over their model's window."""
    counted = count(recipes, state_dir, None)
    planned = {(i.recipe, i.item): i for i in counted.items}
    ahead = forecast(
        counted.demand(),
        recipe_rates=merged_rates(recipes),
        learned=learned_rates(state_dir),
        deadline=run_timeout(recipes),
    )
    lines = forecast_text(ahead)  # how long, and what binds, first (as `plan` opens)
    for recipe in recipes:
        engine = TemplateEngine(recipe.base_dir)
        items = expand(recipe, engine)
        # Every task, as the run counts them; which of them ask a model, which export.
        tasks = sum(1 for task in recipe.tasks.values() if task.asks_model)
        exports = len(recipe.tasks) - tasks
        kinds = ", ".join(
            part
            for part in (
                f"{tasks} asking a model" if tasks else "",
                f"{exports} export{'s' if exports != 1 else ''}" if exports else "",
            )
            if part
        )
        groups = [
            p for p in planned.values() if p.recipe == recipe.name and p.transcription == GROUP
        ]
        # The run counts each group as one more thing to finish, as its progress says.
        grouped = f"; and {len(groups)} group(s) of items" if groups else ""
        lines.append(
            f"{recipe.display}: {len(items)} item(s) × {len(recipe.tasks)} task(s) ({kinds})"
            + grouped
        )
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
            if plan is not None:  # engines compared: how each gets its transcript
                step += "".join(f"; {c.engine}: {c.transcription}" for c in plan.compared)
            calls = (
                f"{plan.calls} LLM call(s) to send, {plan.cached} cached"
                if plan is not None
                else f"{tasks} LLM call(s)"
            )
            lines.append(f"  {item.name}: {step}; {calls}  ({item.relative_source(recipe)})")
        lines += [  # the group tasks' lines (`over:`), after every item
            f"  {p.item}: a group of items; {p.calls} LLM call(s) to send, {p.cached} cached"
            for p in groups
        ]
    lines.append("Dry run: nothing was sent.")
    return "\n".join(lines), counted.too_long


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
