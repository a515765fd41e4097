"""``transcript-runner render``: the exact requests a run would send, sending nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import closing, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from runner.checks import load_recipe
from runner.diagnostics import display_path, suggest
from runner.errors import EXIT_OK, RunFailed, SourceUnreadable, TemplateProblem, UsageError
from runner.execute.segments import kept, sources, transcript_view
from runner.items import Item, expand
from runner.prompt.payloads import build_payload, task_context
from runner.prompt.preview import Rendered, as_json, as_text
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import TaskResultView
from runner.recipe.model import TRANSCRIPT_FILE, InputKind, Recipe, Task
from runner.recipe.variables import command_line_vars
from runner.results.outputs import item_dir
from runner.results.paths import check_paths
from runner.store import DEFAULT_STATE_DIR, Store
from runner.transcript.model import Transcript, load_saved


@dataclass(frozen=True)
class RenderRequest:
    recipe: Path
    item_name: str | None = None  # only this item
    task_name: str | None = None  # only this task
    transcript_file: Path | None = None  # this saved transcript for every item
    fmt: str = "text"  # text or json
    full: bool = False  # do not shorten long messages
    out: Path | None = None  # output folder of earlier runs, to find stored transcripts
    state_dir: Path | None = None  # the runs' store: the sentences and paragraphs they fetched
    var: Sequence[str] = ()  # --var NAME=VALUE, over the recipes' `vars:`
    vars_files: Sequence[Path] = ()  # --vars FILE, under --var


def render(request: RenderRequest) -> int:
    """Print the requests a recipe would send, for items whose transcript is local."""
    check_paths(read_folders={"--out": request.out, "--state-dir": request.state_dir})
    variables = command_line_vars(request.vars_files, request.var)
    recipe, engine, items = _load_for_render(request.recipe, variables)
    items = _select_items(items, request.item_name)
    tasks = _select_tasks(recipe, request.task_name)
    if not tasks:
        exports = ", ".join(recipe.tasks)
        click.echo(
            f"{display_path(request.recipe)}: nothing to render: every task ({exports}) is an "
            "export, which writes the transcript itself and sends no prompt. `transcript-runner "
            "run` writes them; `run --dry-run` says what it would do."
        )
        return EXIT_OK
    override = _read_transcript(request.transcript_file) if request.transcript_file else None
    out = request.out
    rendered: list[Rendered] = []
    skipped: list[tuple[str, str]] = []
    store = Store.existing(request.state_dir or DEFAULT_STATE_DIR)
    with closing(store) if store is not None else nullcontext():
        for item in items:
            found = override or _local_transcript(recipe, engine, item, out)
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
            rendered.append(_render_item(recipe, engine, item, tasks, transcript, origin, store))
    if not rendered:
        reasons = "\n".join(f"  {name}: {reason}" for name, reason in skipped)
        raise UsageError(f"nothing to render:\n{reasons}")
    if request.fmt == "json":
        text = as_json(rendered, skipped, recipe.var_overrides)
    else:
        text = as_text(rendered, skipped, full=request.full, variables=recipe.var_overrides)
    click.echo(text)
    return EXIT_OK


def _load_for_render(
    path: Path, variables: Mapping[str, Any]
) -> tuple[Recipe, TemplateEngine, list[Item]]:
    if not path.is_file():
        raise UsageError(f"{path}: no such recipe file")
    recipe = load_recipe(path, variables)
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
    """The tasks whose prompts to show: exports send none, and a group task's prompt is
    not one item's (it reads every item of its group), so they are left out."""
    prompted = tuple(
        task for task in recipe.ordered_tasks() if task.asks_model and task.over is None
    )
    if name is None:
        return prompted
    if name not in recipe.tasks:
        raise UsageError(
            f"no task named {name!r}{suggest(name, recipe.tasks)}; tasks: {', '.join(recipe.tasks)}"
        )
    if not recipe.tasks[name].asks_model:
        raise UsageError(
            f"task {name!r} is an export: it writes the transcript itself and sends no "
            "prompt to render"
        )
    if recipe.tasks[name].over is not None:
        raise UsageError(
            f"task {name!r} runs once over a group of items (`over:`), not per item, so "
            "render has no item's prompt to show for it; `plan` counts its requests"
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
    store: Store | None,
) -> Rendered:
    # The run's own sentences and paragraphs when kept, as the run would use them.
    segments = kept(store, transcript)
    view = transcript_view(transcript, segments)
    results = {
        name: TaskResultView.sample(
            task, f"[the reply of task {name!r} appears here when the recipe runs]"
        )
        for name, task in recipe.tasks.items()
    }
    entry = Rendered(item.name, f"{item.kind.value}: {item.source}", origin, sources(segments))
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
