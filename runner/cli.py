"""The command line: parse, build, call one function, return its exit code.

Kept thin and light: heavy modules (jsonschema, jinja2, aiohttp) are imported
inside the commands that need them, so ``--help`` starts fast and ``validate``
never imports the HTTP stack.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from runner import __version__
from runner.api.families import LIMIT_KINDS
from runner.crash import crash_if_asked, report_crash
from runner.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, RunnerError, UsageError
from runner.folders import DEFAULT_MANIFEST

if TYPE_CHECKING:
    from runner.items import Shard

FC = TypeVar("FC", bound=Callable[..., Any])

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# --- converters: each option's value is checked once, as it is parsed ---------------


def _path_or_none(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Path | None:
    """An optional path; an empty value (an unset CI variable) means "not given", never
    the current folder."""
    return Path(value) if value else None


def _parse_limits(values: Sequence[str]) -> dict[str, int]:
    from runner.commands.run import parse_limits

    return parse_limits(values)


def _parse_duration(text: str | None) -> float | None:
    from runner.execute.forecast import parse_duration

    if text is None:
        return None
    seconds = parse_duration(text)
    if seconds is None:
        raise click.BadParameter(f"{text!r}: give a duration such as 6h, 90m, 1h30m or 3600")
    return seconds


def _parse_shard(text: str | None) -> Shard | None:
    from runner.items import Shard

    return Shard.parse(text) if text is not None else None


def _vars_options(command: FC) -> FC:
    """``--var NAME=VALUE`` and ``--vars FILE``, over the recipes' ``vars:``."""
    command = click.option(
        "--vars",
        "vars_files",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help="Vars from this YAML file over the recipes' `vars:` (repeatable).",
    )(command)
    return click.option(
        "--var",
        "var",
        multiple=True,
        metavar="NAME=VALUE",
        help="Set vars.NAME to VALUE over the recipes' `vars:` and --vars (repeatable).",
    )(command)


# The model names --llm-url's server is sent (validate checks them as run sends them).
_llm_model_option = click.option(
    "--llm-model",
    "llm_model",
    multiple=True,
    metavar="MODEL|FROM=TO",
    help="The model --llm-url's server is sent: MODEL for every task, or FROM=TO for "
    "one model name (repeatable).",
)


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="transcript-runner")
def cli() -> None:
    """Run LLM prompts over audio transcripts, declared in YAML recipes.

    \b
    Examples:
      transcript-runner validate                      # every recipe under recipes/
      transcript-runner validate recipes/summaries.yaml --format github
      transcript-runner render recipes/summaries.yaml --transcript call.json
      transcript-runner schema > recipe.schema.json

    \b
    Exit codes: 0 ok, 1 an item/task/expectation failed, 2 usage error,
                3 invalid recipe, 4 a bug in transcript-runner, 130 interrupted.
    Environment: ASSEMBLYAI_API_KEY, ASSEMBLYAI_BASE_URL, ASSEMBLYAI_LLM_GATEWAY_URL.
    """


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default=None,
    help="Report format. Default: github when GITHUB_ACTIONS=true, else text.",
)
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 3).")
@click.option(
    "--online",
    is_flag=True,
    help="Also check model names against the LLM Gateway's public model list.",
)
@click.option(
    "--region",
    type=click.Choice(["us", "eu"]),
    help="Check what this AssemblyAI region offers (the EU: no LeMUR, no OpenAI).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    callback=_path_or_none,
    help="Where --online keeps the model list [default: .transcript-runner].",
)
@click.option(
    "--llm-url",
    envvar="TRANSCRIPT_RUNNER_LLM_URL",
    metavar="URL",
    help="Check the recipes as run --llm-url URL runs them (no request is sent).",
)
@_llm_model_option
@_vars_options
def validate(**options: Any) -> None:
    """Check recipes offline: YAML, schema, references, files and templates.

    PATHS are recipe files or folders (searched for *.yaml and *.yml);
    default: the recipes/ folder. Nothing is sent over the network, except
    --online's one request for the Gateway's model list (no key needed; kept a day).

    \b
    Examples:
      transcript-runner validate
      transcript-runner validate recipes/ other/meeting.yaml --format json
      transcript-runner validate --online --region eu
      transcript-runner validate recipes/summaries.yaml --llm-url http://127.0.0.1:8080/v1
    """
    from runner.commands.validate import ValidateRequest, validate

    _exit(validate(ValidateRequest(**options)))


@cli.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--item", "item_name", metavar="NAME", help="Only this item.")
@click.option("--task", "task_name", metavar="NAME", help="Only this task.")
@click.option(
    "--transcript",
    "transcript_file",
    metavar="FILE",
    type=click.Path(),
    callback=_path_or_none,
    help="Use this saved transcript (GET /v2/transcript JSON) for every item.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--full", is_flag=True, help="Do not shorten long messages.")
@click.option(
    "--out",
    type=click.Path(),
    callback=_path_or_none,
    help="Output folder of earlier runs (to find stored transcripts).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    callback=_path_or_none,
    help="The runs' state folder, for the sentences and paragraphs they fetched "
    "[default: .transcript-runner].",
)
@_vars_options
def render(**options: Any) -> None:
    """Print exactly what each task would send, without sending anything.

    Works for items whose transcript is on disk: transcript_file inputs, a
    --transcript FILE, or transcripts stored by an earlier run. No network.

    \b
    Examples:
      transcript-runner render recipes/summaries.yaml
      transcript-runner render recipes/meeting-notes.yaml --transcript call.json --task summary
      transcript-runner render recipes/action-items.yaml --format json --full
      transcript-runner render recipes/action-items.yaml --var audience=board
    """
    from runner.commands.render import RenderRequest, render

    _exit(render(RenderRequest(**options)))


@cli.command()
@click.argument("recipes", nargs=-1, type=click.Path())
@click.option(
    "--out",
    type=click.Path(),
    callback=_path_or_none,
    help="Write outputs to DIR/<recipe>/<item>/.",
)
@click.option(
    "--manifest",
    type=click.Path(),
    callback=_path_or_none,
    help="Where to write the run manifest [default: OUT/run.json].",
)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop the whole run after this long; finished outputs are kept.")  # fmt: skip
@click.option(
    "--limit",
    "limits",
    multiple=True,
    callback=lambda _ctx, _param, values: _parse_limits(values),
    metavar="KIND=N",
    help=f"The most requests at once (a ceiling), per kind: {', '.join(LIMIT_KINDS)}.",
)
@click.option(
    "--region",
    type=click.Choice(["us", "eu"]),
    help="AssemblyAI region (the ASSEMBLYAI_*_URL variables still win).",
)
@click.option("--dry-run", is_flag=True, help="Print what would run; send nothing.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    callback=_path_or_none,
    help="Ledger and cache folder [default: .transcript-runner].",
)
@click.option("--no-cache", is_flag=True, help="Ask the LLM again (transcripts are still reused).")
@click.option(
    "--offline", is_flag=True, help="Use only the state store; a missing entry is an error."
)
@click.option(
    "--shard",
    metavar="K/N",
    callback=lambda _ctx, _param, text: _parse_shard(text),
    help="Run only this CI job's share of the items; auto: from a Kubernetes Indexed "
    "Job or a Slurm array.",
)
@click.option(
    "--max-audio-hours",
    type=click.FloatRange(min=0),
    metavar="H",
    help="Refuse to start if more audio than this would be transcribed.",
)
@click.option(
    "--max-llm-calls",
    type=click.IntRange(min=0),
    metavar="N",
    help="Refuse to start if more LLM calls than this would be sent.",
)
@click.option(
    "--progress",
    type=click.Choice(["auto", "live", "plain"]),
    default="auto",
    show_default=True,
    help="Live status line on a terminal, plain log lines otherwise.",
)
@click.option(
    "--junit",
    type=click.Path(dir_okay=False),
    callback=_path_or_none,
    help="Also write a JUnit XML report (a test case per item and task) here.",
)
@click.option(
    "--prices",
    type=click.Path(dir_okay=False),
    callback=_path_or_none,
    metavar="FILE",
    help="Your price table (YAML), for the run's real costs; see docs/prices.example.yaml.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False),
    callback=_path_or_none,
    help="Where to write the HTML report [default: report.html beside the manifest].",
)
@click.option("--no-report", is_flag=True, help="Do not write the HTML report.")
@click.option(
    "--llm-url",
    envvar="TRANSCRIPT_RUNNER_LLM_URL",
    metavar="URL",
    help="Send every LLM Gateway task to this OpenAI-compatible server instead "
    "(up to /v1; env TRANSCRIPT_RUNNER_LLM_URL).",
)
@_llm_model_option
@_vars_options
def run(**options: Any) -> None:
    """Run recipes: transcribe, prompt, post-process, write outputs and a manifest.

    Needs ASSEMBLYAI_API_KEY (except with --dry-run or --offline). Exit code 1 when
    any item or task failed; every failure is in the manifest with its cause. A
    rerun reattaches to transcriptions it already submitted and reuses cached
    replies, so it only does (and pays for) what is missing. In GitHub Actions it
    also writes a job summary and annotates the recipe line of each failure.

    \b
    Examples:
      transcript-runner run recipes/summaries.yaml
      transcript-runner run recipes/ --out results --limit llm=4 --timeout 1800
      transcript-runner run recipes/meeting-notes.yaml --dry-run
    """
    from runner.commands.run import RunRequest, run

    _exit(run(RunRequest(**options)))


@cli.command()
@click.argument("recipes", nargs=-1, type=click.Path())
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    callback=_path_or_none,
    help="Ledger and cache folder [default: .transcript-runner].",
)
@click.option(
    "--shard",
    metavar="K/N",
    callback=lambda _ctx, _param, text: _parse_shard(text),
    help="Plan only this CI job's share of the items (K/N or auto, as for run).",
)
@click.option(
    "--prices",
    type=click.Path(dir_okay=False),
    callback=_path_or_none,
    metavar="FILE",
    help="Your price table (YAML) to estimate costs; see docs/prices.example.yaml.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--online",
    is_flag=True,
    help="Read the LLM Gateway's model list (no key needed; kept a day): its prices, "
    "where it gives them, and the models it lists.",
)
@_vars_options
@click.option(
    "--deadline",
    metavar="DURATION",
    callback=lambda _ctx, _param, text: _parse_duration(text),
    help="Say whether the run fits this long (6h, 90m, 1h30m, 3600) [default: timeouts.run].",
)
@click.option("--items", "-v", "per_item", is_flag=True, help="Add a line per item.")
def plan(**options: Any) -> None:
    """Print what a run would do, without doing it: nothing is sent.

    First how long the run will take and which limit binds (each LLM Gateway model's
    requests a minute, transcription jobs at once), then transcriptions to submit
    versus already in the ledger, LLM calls to send versus cached, audio hours and
    estimated tokens.

    \b
    Examples:
      transcript-runner plan recipes/
      transcript-runner plan recipes/ --deadline 6h
      transcript-runner plan recipes/summaries.yaml --prices prices.yaml
    """
    from runner.commands.plan import PlanRequest, plan

    _exit(plan(PlanRequest(**options)))


@cli.command()
@click.argument("recipes", nargs=-1, type=click.Path())
@click.option(
    "--base",
    required=True,
    metavar="REF",
    help="The git commit, branch or tag to compare with (e.g. origin/main, HEAD~1).",
)
@click.option(
    "--head",
    metavar="REF",
    help="Compare this commit instead of the working tree.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    callback=_path_or_none,
    help="Folder for review.md, .json, .html and both sides' outputs [default: review].",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    callback=_path_or_none,
    help="Ledger and cache folder, shared with run [default: .transcript-runner].",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    metavar="N",
    help="Items to compare when the recipe has no `review:` [default: 5].",
)
@click.option(
    "--transcribe",
    is_flag=True,
    help="Transcribe sampled items that have no transcript yet (skipped otherwise).",
)
@click.option("--offline", is_flag=True, help="Compare only what the cache holds; send nothing.")
@click.option(
    "--budget",
    type=click.IntRange(min=0),
    metavar="N",
    help="At most N LLM calls; refused before sending when more are needed.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["regression", "change", "never"]),
    default="regression",
    show_default=True,
    help="Exit 1 when a passing task or expectation fails on head, when any output "
    "changes, or never.",
)
@_vars_options
def review(**options: Any) -> None:
    """Show what a change to the recipes does: base and head outputs, side by side.

    Tasks whose request or expectations changed, and the tasks that need them, run on
    a sample of items on both sides; the base side comes from the reply cache when it
    can. Writes review.md (for a pull request comment), review.json and
    review.html (side by side, changes marked).

    \b
    Examples:
      transcript-runner review recipes/ --base origin/main
      transcript-runner review recipes/summaries.yaml --base HEAD~1 --offline
    """
    from runner.commands.review import ReviewRequest, review

    _exit(review(ReviewRequest(**options)))


def _renamed(old: str, new: str) -> Callable[[FC], FC]:
    """A hidden option under its former name: still taken, with a notice of the new one
    (a workflow written for the old name keeps working)."""

    def notice(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Path | None:
        if value is None:
            return None
        click.echo(
            f"note: {old} is now {new} (it names what it writes); {old} still works", err=True
        )
        return Path(value)

    return click.option(
        old, "renamed_out", hidden=True, type=click.Path(dir_okay=False), callback=notice
    )


@cli.command()
@click.argument("manifests", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    default=str(DEFAULT_MANIFEST),
    show_default=True,
    help="Where to write the merged manifest.",
)
@_renamed("--out", "--manifest")
@click.option(
    "--junit",
    type=click.Path(dir_okay=False),
    callback=_path_or_none,
    help="Also write a JUnit XML report of the merged run here.",
)
def merge(**options: Any) -> None:
    """Combine the run.json manifests of sharded runs into one, and report it.

    The shards' results tables (output.table) are combined too, one per recipe,
    beside the merged manifest: <folder of --manifest>/<recipe>/<table>.

    Exit code 1 when the merged run had any failure, as `run` would have; 2 when
    an input is missing, is not a manifest, or shares items with another input,
    or a shard's table cannot be read.

    \b
    Examples:
      transcript-runner merge shard-*/run.json
      transcript-runner merge a/run.json b/run.json --manifest out/run.json --junit junit.xml
    """
    from runner.commands.merge import MergeRequest, merge

    renamed = options.pop("renamed_out")
    if renamed is not None:
        given = click.get_current_context().get_parameter_source("manifest")
        if given is not click.core.ParameterSource.DEFAULT:
            raise UsageError("give --manifest only (--out is its former name)")
        options["manifest"] = renamed
    _exit(merge(MergeRequest(**options)))


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--check", is_flag=True, help="Print what would change (a diff) and exit 1; write nothing."
)
def migrate(**options: Any) -> None:
    """Rewrite LeMUR tasks as LLM Gateway tasks, keeping comments and layout.

    AssemblyAI deprecated LeMUR. Each `api: lemur` task becomes the same task on
    the Gateway: final_model becomes model (its current equivalent), context a
    system message, max_output_size max_tokens, and the prompt ends with the
    transcript (or the task's input_text). PATHS are recipe files or folders;
    default: the recipes/ folder.

    \b
    Examples:
      transcript-runner migrate recipes/lemur-locations.yaml
      transcript-runner migrate --check            # in CI: exit 1 if any is left
    """
    from runner.commands.migrate import MigrateRequest, migrate

    _exit(migrate(MigrateRequest(**options)))


@cli.command()
@click.argument("manifests", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--html",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the report [default: report.html beside the first manifest].",
)
@_renamed("--out", "--html")
def report(**options: Any) -> None:
    """Write the HTML report of a run from its run.json (several: shards, merged).

    One self-contained file (no CDN, no server), for a browser or a CI artifact.
    `run` writes one itself; this rebuilds it, or reports a sharded run.

    \b
    Examples:
      transcript-runner report out/run.json
      transcript-runner report shard-*/run.json --html report.html
    """
    from runner.commands.report import ReportRequest, report

    renamed = options.pop("renamed_out")
    if renamed is not None and options["html"] is not None:
        raise UsageError("give --html only (--out is its former name)")
    options["html"] = options["html"] or renamed
    _exit(report(ReportRequest(**options)))


@cli.group()
def cache() -> None:
    """Inspect or clear the state store (transcription ledger and LLM reply cache)."""


_STATE_DIR = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".transcript-runner",
    show_default=True,
    help="The state folder.",
)


@cache.command("ls")
@_STATE_DIR
def cache_ls(**options: Any) -> None:
    """List ledger entries and cached replies, oldest first."""
    from runner.commands.cache import CacheRequest, ls

    _exit(ls(CacheRequest(**options)))


@cache.command("show")
@click.argument("key")
@_STATE_DIR
def cache_show(**options: Any) -> None:
    """Print one entry (the first characters of its KEY are enough)."""
    from runner.commands.cache import CacheRequest, show

    _exit(show(CacheRequest(**options)))


@cache.command("clear")
@click.argument("key", required=False)
@click.option("--older-than", metavar="AGE", help="Only entries older than this: 30m, 12h, 7d.")
@click.option("--yes", is_flag=True, help="Do not ask (needed when not on a terminal, e.g. in CI).")
@_STATE_DIR
def cache_clear(**options: Any) -> None:
    """Delete cached replies and ledger entries (asks first, unless --yes).

    With KEY (its first characters are enough), only that entry: a damaged reply, say.
    """
    from runner.commands.cache import CacheRequest, clear

    _exit(clear(CacheRequest(**options)))


@cli.command()
def schema() -> None:
    """Print the recipe JSON Schema (for editors and other tools).

    \b
    VS Code (YAML extension) picks it up from the first line of a recipe:
      # yaml-language-server: $schema=../schemas/recipe.schema.json
    """
    from runner.commands.schema import schema

    _exit(schema())


def _exit(code: int) -> NoReturn:
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: user errors print a message and their exit code, never a traceback;
    anything else is a bug, said in one line with its details in a crash log."""
    try:
        crash_if_asked()
        result: Any = cli.main(args=argv, prog_name="transcript-runner", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except RunnerError as exc:
        prefix = "error: " if isinstance(exc, UsageError) else ""
        click.echo(f"{prefix}{exc.message}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # the last handler: a bug, not the user's doing
        args = sys.argv[1:] if argv is None else argv
        click.echo(report_crash(exc, args, os.environ), err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(result if isinstance(result, int) else EXIT_OK)
