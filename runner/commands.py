"""What each command does, as plain functions returning exit codes (the CLI stays thin)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from runner.context import TaskResultView, TranscriptView, sample_json
from runner.diagnostics import Diagnostic, Severity, format_report, suggest
from runner.errors import EXIT_INVALID_RECIPE, EXIT_OK, RunFailed, UsageError
from runner.inputs import Item, expand
from runner.outputs import TRANSCRIPT_FILE, item_dir
from runner.payloads import build_payload, task_context
from runner.recipe import InputKind, Recipe, Task
from runner.templating import TemplateEngine, TemplateProblem
from runner.transcript import (
    Transcript,
    load_saved,
    paragraphs_from_sentences,
    sentences_from_words,
)
from runner.validation import discover, display_path, load_recipe, validate_file

if TYPE_CHECKING:
    from runner.preview import Rendered


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
    from runner.preview import as_json, as_text

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
    except ValueError as exc:
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
    from runner.preview import Rendered

    sentences = sentences_from_words(transcript.words)
    view = TranscriptView.build(transcript, sentences, paragraphs_from_sentences(sentences))
    results = {
        name: TaskResultView.build(
            name,
            f"[the reply of task {name!r} appears here when the recipe runs]",
            sample_json(task.json_schema),
        )
        for name, task in recipe.tasks.items()
    }
    entry = Rendered(item.name, f"{item.kind.value}: {item.source}", origin)
    for task in tasks:
        context = task_context(recipe, item, task, view, results)
        try:
            payload = build_payload(
                engine, task, context, transcript_id=transcript.id, transcript_text=transcript.text
            )
        except TemplateProblem as problem:
            raise RunFailed(f"cannot render item {item.name!r}:\n{problem.message}") from None
        entry.tasks.append((task.name, payload))
    return entry
