"""What each command does, as plain functions returning exit codes (the CLI stays thin)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from runner.checks import discover, load_recipe, validate_file
from runner.diagnostics import Diagnostic, Severity, display_path, format_report, suggest
from runner.errors import (
    EXIT_FAILED,
    EXIT_INVALID_RECIPE,
    EXIT_OK,
    RunFailed,
    SourceUnreadable,
    TemplateProblem,
    UsageError,
)
from runner.execute.planning import load_prices, make_plan, plan_json, plan_text
from runner.items import Item, Shard, expand
from runner.prompt.payloads import build_payload, task_context
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import TaskResultView, TranscriptView, sample_json
from runner.recipe.model import TRANSCRIPT_FILE, InputKind, Recipe, Task
from runner.results.outputs import item_dir
from runner.store import DB_FILE, DEFAULT_STATE_DIR, CachedReply, Store
from runner.transcript.model import (
    Transcript,
    load_saved,
    paragraphs_from_sentences,
    sentences_from_words,
)

if TYPE_CHECKING:
    from runner.prompt.preview import Rendered


def run_validate(paths: Sequence[str], fmt: str, *, strict: bool = False) -> int:
    """Validate recipes and print one report; 0 when all are valid, 3 when not."""
    files = discover(paths)
    diagnostics: list[Diagnostic] = []
    for path in files:
        diagnostics.extend(validate_file(path).diagnostics)
    if strict:
        diagnostics = [
            Diagnostic(d.file, d.line, d.column, d.path, d.message, Severity.ERROR)
            for d in diagnostics
        ]
    click.echo(format_report(diagnostics, len(files), fmt))
    return EXIT_INVALID_RECIPE if any(d.is_error for d in diagnostics) else EXIT_OK


def run_render(
    recipe_path: str,
    *,
    item_name: str | None,
    task_name: str | None,
    transcript_file: str | None,
    fmt: str,
    full: bool,
    out: str | None,
) -> int:
    """Print the requests a recipe would send, for items whose transcript is local."""
    from runner.prompt.preview import as_json, as_text

    recipe, engine, items = _load_for_render(recipe_path)
    items = _select_items(items, item_name)
    tasks = _select_tasks(recipe, task_name)
    override = _read_transcript(Path(transcript_file)) if transcript_file else None
    rendered: list[Rendered] = []
    skipped: list[tuple[str, str]] = []
    for item in items:
        found = override or _local_transcript(recipe, engine, item, Path(out) if out else None)
        if found is None:
            skipped.append(
                (
                    item.name,
                    f"no local transcript for {item.kind.value} {item.source!r}; pass "
                    "--transcript FILE, or run the recipe once so its transcript is stored",
                )
            )
            continue
        transcript, origin = found
        rendered.append(_render_item(recipe, engine, item, tasks, transcript, origin))
    if not rendered:
        reasons = "\n".join(f"  {name}: {reason}" for name, reason in skipped)
        raise UsageError(f"nothing to render:\n{reasons}")
    text = as_json(rendered, skipped) if fmt == "json" else as_text(rendered, skipped, full=full)
    click.echo(text)
    return EXIT_OK


def _load_for_render(recipe_path: str) -> tuple[Recipe, TemplateEngine, list[Item]]:
    path = Path(recipe_path)
    if not path.is_file():
        raise UsageError(f"{recipe_path}: no such recipe file")
    recipe = load_recipe(path)
    engine = TemplateEngine(recipe.base_dir)
    return recipe, engine, expand(recipe, engine)


def _select_items(items: list[Item], name: str | None) -> list[Item]:
    if name is None:
        return items
    chosen = [i for i in items if i.name == name]
    if not chosen:
        names = [i.name for i in items]
        raise UsageError(
            f"no item named {name!r}{suggest(name, names)}; items: {', '.join(names) or 'none'}"
        )
    return chosen


def _select_tasks(recipe: Recipe, name: str | None) -> tuple[Task, ...]:
    ordered = recipe.ordered_tasks()
    if name is None:
        return ordered
    if name not in recipe.tasks:
        raise UsageError(
            f"no task named {name!r}{suggest(name, recipe.tasks)}; tasks: {', '.join(recipe.tasks)}"
        )
    return (recipe.tasks[name],)


def _read_transcript(path: Path) -> tuple[Transcript, str]:
    try:
        return load_saved(path), display_path(path)
    except SourceUnreadable as exc:
        raise UsageError(str(exc)) from None


def _local_transcript(
    recipe: Recipe, engine: TemplateEngine, item: Item, out: Path | None
) -> tuple[Transcript, str] | None:
    """The item's transcript if it is on disk: a transcript_file, or one a run stored."""
    if item.kind is InputKind.TRANSCRIPT_FILE:
        return _read_transcript(Path(item.source))
    stored = item_dir(recipe, item, engine, out) / TRANSCRIPT_FILE
    return _read_transcript(stored) if stored.is_file() else None


def _render_item(
    recipe: Recipe,
    engine: TemplateEngine,
    item: Item,
    tasks: Sequence[Task],
    transcript: Transcript,
    origin: str,
) -> Rendered:
    from runner.prompt.preview import Rendered

    sentences = sentences_from_words(transcript.words)
    view = TranscriptView.build(transcript, sentences, paragraphs_from_sentences(sentences))
    results = {
        name: TaskResultView.build(
            name,
            f"[the reply of task {name!r} appears here when the recipe runs]",
            sample_json(task.json_schema),
            structured=task.structured,
        )
        for name, task in recipe.tasks.items()
    }
    entry = Rendered(item.name, f"{item.kind.value}: {item.source}", origin)
    for task in tasks:
        context = task_context(recipe, item.view(recipe), task, view, results)
        try:
            payload = build_payload(
                engine, task, context, transcript_id=transcript.id, transcript_text=transcript.text
            )
        except TemplateProblem as problem:
            raise RunFailed(f"cannot render item {item.name!r}:\n{problem.message}") from None
        entry.tasks.append((task.name, payload))
    return entry


LIMIT_KINDS = ("items", "uploads", "transcriptions", "polls", "llm", "lemur")


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


def run_run(
    paths: Sequence[str],
    *,
    out: str | None,
    manifest: str | None,
    timeout: float | None,
    limits: Sequence[str],
    region: str | None,
    dry_run: bool,
    progress: str,
    state_dir: str | None = None,
    use_cache: bool = True,
    offline: bool = False,
    junit: str | None = None,
    shard: str | None = None,
    max_audio_hours: float | None = None,
    max_llm_calls: int | None = None,
) -> int:
    """Run recipes against AssemblyAI; 0 when everything succeeded, 1 when something failed."""
    if not paths:
        raise UsageError("name at least one recipe: transcript-runner run recipes/summaries.yaml")
    recipes = _load_all(discover(paths))
    overrides = parse_limits(limits)
    chosen = _shard(shard)
    if dry_run:
        click.echo(_dry_run_text(recipes))
        return EXIT_OK
    state = Path(state_dir) if state_dir else DEFAULT_STATE_DIR
    if max_audio_hours is not None or max_llm_calls is not None:
        _check_budget(recipes, state, chosen, max_audio_hours, max_llm_calls, use_cache)
    from runner.commands.run import execute

    return execute(
        recipes,
        out=Path(out) if out else None,
        manifest=Path(manifest) if manifest else None,
        timeout=timeout,
        limit_overrides=overrides,
        region=region,
        progress=progress,
        state_dir=Path(state_dir) if state_dir else None,
        use_cache=use_cache,
        offline=offline,
        junit=Path(junit) if junit else None,
        shard=chosen,
    )


def _shard(text: str | None) -> Shard | None:
    if text is None:
        return None
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _check_budget(
    recipes: Sequence[Recipe],
    state: Path,
    shard: Shard | None,
    max_audio_hours: float | None,
    max_llm_calls: int | None,
    use_cache: bool,
) -> None:
    """Refuse to start a run that would exceed a budget (it is counted like `plan`)."""
    store = Store(state) if (state / DB_FILE).is_file() else None
    try:
        plan = make_plan(recipes, store, shard, use_cache=use_cache)
    except SourceUnreadable as exc:
        raise UsageError(str(exc)) from None
    if store is not None:
        store.close()
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


def run_plan(
    paths: Sequence[str],
    *,
    state_dir: str | None,
    shard: str | None,
    prices: str | None,
    fmt: str,
) -> int:
    """Print what a run would do: transcriptions, LLM calls, cached work, audio, tokens."""
    if not paths:
        raise UsageError("name at least one recipe: transcript-runner plan recipes/")
    recipes = _load_all(discover(paths))
    state = Path(state_dir) if state_dir else DEFAULT_STATE_DIR
    store = Store(state) if (state / DB_FILE).is_file() else None
    try:
        plan = make_plan(recipes, store, _shard(shard))
    except SourceUnreadable as exc:
        raise UsageError(str(exc)) from None
    if store is not None:
        store.close()
    table = None
    if prices:
        try:
            table = load_prices(Path(prices))
        except (OSError, ValueError) as exc:
            raise UsageError(f"--prices {prices}: {exc}") from None
    if fmt == "json":
        click.echo(json.dumps(plan_json(plan), indent=2))
    else:
        click.echo(plan_text(plan, table, recipes))
    return EXIT_OK


def _load_all(files: Sequence[Path]) -> list[Recipe]:
    recipes: list[Recipe] = []
    problems: list[Diagnostic] = []
    for path in files:
        result = validate_file(path)
        problems.extend(d for d in result.diagnostics if d.is_error)
        if result.recipe is not None:
            recipes.append(result.recipe)
    if problems:
        from runner.errors import RecipeInvalid

        raise RecipeInvalid(sorted(problems))
    return recipes


def _dry_run_text(recipes: Sequence[Recipe]) -> str:
    """What a run would do, without a network call or an API key."""
    lines: list[str] = []
    for recipe in recipes:
        engine = TemplateEngine(recipe.base_dir)
        items = expand(recipe, engine)
        calls = len(recipe.tasks)
        lines.append(f"{recipe.display}: {len(items)} item(s) × {calls} task(s)")
        for item in items:
            step = {
                InputKind.URL: "transcribe the URL",
                InputKind.FILE: "upload, then transcribe",
                InputKind.TRANSCRIPT_ID: "fetch the transcript",
                InputKind.TRANSCRIPT_FILE: "read the saved transcript",
            }[item.kind]
            lines.append(f"  {item.name}: {step}; {calls} LLM call(s)  ({item.source})")
    lines.append("Dry run: nothing was sent.")
    return "\n".join(lines)


# --- merge ---------------------------------------------------------------------------


def run_merge(paths: Sequence[str], *, out: str, junit: str | None) -> int:
    """Merge shard manifests into ``out``; 1 when the merged run failed, as ``run`` would."""
    from runner.results.outputs import write_json
    from runner.results.progress import summary_text
    from runner.results.reports import (
        load_manifest,
        merge,
        merged_totals,
        missing_shards,
        publish,
        run_failed,
    )

    target, report = Path(out), Path(junit) if junit else None
    _refuse_overwriting_inputs(paths, [target, *([report] if report else [])])
    try:
        manifests = [load_manifest(Path(path)) for path in paths]
        merged = merge(manifests, names=list(paths))
    except (OSError, ValueError) as exc:
        raise UsageError(_reason(exc)) from None
    write_json(target, merged)
    problems = publish(merged, junit=report, environ=os.environ, annotate=False)
    summary = merged["summary"]
    click.echo(f"Merged {len(paths)} manifests ({merged['shards']} shards) into {out}.")
    missing = missing_shards(manifests, paths)
    if missing:
        click.echo(
            f"Incomplete: no manifest of shard {', '.join(missing)} was given, so its items "
            "are missing from the merged run."
        )
    click.echo(
        summary_text(
            merged_totals(merged),
            outcome=summary["outcome"],
            wall=summary["wall_seconds"],
            manifest=out,
            left=0,
        )
    )
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    return EXIT_FAILED if problems or run_failed(merged) else EXIT_OK


def _refuse_overwriting_inputs(paths: Sequence[str], outputs: Sequence[Path]) -> None:
    inputs = {Path(p).resolve(): p for p in paths}
    for output in outputs:
        if output.resolve() in inputs:
            raise UsageError(
                f"{output} is one of the manifests to merge; write the merged one elsewhere "
                "with --out FILE (or --junit FILE)"
            )


def _reason(exc: OSError | ValueError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename}: no such manifest"
    if isinstance(exc, OSError):
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


# --- cache ---------------------------------------------------------------------------

_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _open_store(state_dir: str) -> Store:
    folder = Path(state_dir)
    if not (folder / DB_FILE).is_file():
        raise UsageError(f"no state store in {state_dir}/ (a run creates it; see --state-dir)")
    return Store(folder)


def run_cache_ls(state_dir: str) -> int:
    store = _open_store(state_dir)
    for entry in store.ledger():
        click.echo(
            f"{entry.key[:12]}  transcript  {_when(entry.created)}  {entry.transcript_id}  "
            f"{entry.audio}"
        )
    for reply in store.replies():
        click.echo(
            f"{reply.key[:12]}  reply       {_when(reply.created)}  {reply.model}  {reply.label}"
        )
    store.close()
    return EXIT_OK


def run_cache_show(state_dir: str, key: str) -> int:
    store = _open_store(state_dir)
    found = store.find(key)
    store.close()
    if not found:
        raise UsageError(
            f"no entry whose key starts with {key!r}; see `transcript-runner cache ls`"
        )
    if len(found) > 1:
        raise UsageError(f"{len(found)} entries start with {key!r}; give more characters")
    (entry,) = found
    if isinstance(entry, CachedReply):
        shown = {"key": entry.key, "label": entry.label, "model": entry.model,
                 "request": entry.request, "reply": entry.reply}  # fmt: skip
    else:
        shown = {"key": entry.key, "audio": entry.audio, "transcript_id": entry.transcript_id,
                 "status": entry.status}  # fmt: skip
    click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
    return EXIT_OK


def run_cache_clear(state_dir: str, older_than: str | None) -> int:
    seconds = _age(older_than) if older_than else None
    store = _open_store(state_dir)
    replies, ledger = store.clear(seconds)
    store.close()
    click.echo(f"Removed {replies} cached replies and {ledger} ledger entries.")
    return EXIT_OK


def _age(text: str) -> float:
    number, unit = text[:-1], text[-1:]
    if unit not in _AGE_UNITS or not number.isdigit():
        raise UsageError(f"--older-than {text}: give a number and a unit s, m, h or d, e.g. 7d")
    return int(number) * _AGE_UNITS[unit]


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")
