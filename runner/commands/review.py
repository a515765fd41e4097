"""``transcript-runner review``: what a change to the recipes does, before it merges.

Both versions of the recipes are read (the base from git, :mod:`.review_sources`);
each task's request is keyed as ``run`` keys it (:func:`make_plan`) for a sample of
items, base against head. A task whose request or expectations changed is
"changed", a task that needs one (at any depth) "affected". Those tasks run on both
sides, restricted to the sample, with the normal run machinery and the shared state
store: the base side comes from the reply cache when it is there (free), and only
what changed is sent. The outputs go side by side into review.md, review.json and review.html.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import click

from runner.commands.review_sources import Side, recipes_at, repository_root, working_recipes
from runner.commands.run_config import configure
from runner.commands.run_services import execute
from runner.diagnostics import display_path, suggest
from runner.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ItemError, StoreError, UsageError
from runner.execute.planning import ItemPlan, make_plan
from runner.folders import MANIFEST_FILE
from runner.recipe.model import Recipe, Task
from runner.recipe.variables import command_line_vars
from runner.results import review as out
from runner.results import review_html
from runner.results.manifest import stream_item_records
from runner.results.paths import check_paths
from runner.results.progress import PlainProgress
from runner.results.records import TaskRecord
from runner.store import DEFAULT_STATE_DIR, Store

DEFAULT_REVIEW_DIR = Path("review")
DEFAULT_SAMPLE = 5
FAIL_ON = ("regression", "change", "never")


@dataclass(frozen=True)
class ReviewRequest:
    recipes: Sequence[str]
    base: str
    head: str | None = None  # None: the working tree
    out: Path | None = None  # default: review/
    state_dir: Path | None = None
    sample: int | None = None  # default: the recipe's `review:`, else 5
    transcribe: bool = False  # items with no transcript yet are transcribed, not skipped
    offline: bool = False  # only what the cache holds; nothing is sent
    budget: int | None = None  # at most this many LLM calls
    fail_on: str = "regression"
    var: Sequence[str] = ()  # --var NAME=VALUE, on both sides
    vars_files: Sequence[Path] = ()  # --vars FILE, under --var


@dataclass(frozen=True)
class _Plan:
    """What to compare in one recipe, found before anything runs."""

    head: Recipe
    base: Recipe | None
    items: tuple[str, ...]
    skipped: tuple[str, ...]
    status: Mapping[str, tuple[str, str]]  # task → (changed/affected/added/unchanged, why)


def review(request: ReviewRequest) -> int:
    """Compare base and head; 0 when nothing regressed (by --fail-on), 1 otherwise."""
    if not request.recipes:
        raise UsageError("name at least one recipe: transcript-runner review recipes/ --base main")
    folder = request.out or DEFAULT_REVIEW_DIR
    state_dir = request.state_dir or DEFAULT_STATE_DIR
    check_paths(folders={"--out": folder, "--state-dir": request.state_dir})
    root = repository_root()
    # The same vars on both sides: what changed is the recipes, not the audience.
    variables = command_line_vars(request.vars_files, request.var)
    with tempfile.TemporaryDirectory(prefix="review-") as scratch:
        base = recipes_at(root, request.base, request.recipes, Path(scratch) / "base", variables)
        head = (
            recipes_at(
                root, request.head, request.recipes, Path(scratch) / "head", variables, "--head"
            )
            if request.head
            else working_recipes(request.recipes, variables)
        )
        plans = _plans(base, head, state_dir, request)
        _check_budget(plans, state_dir, request)
        result = out.Review(base.label, head.label, offline=request.offline)
        base_records = _run_side(plans, "base", folder, state_dir, request.offline)
        head_records = _run_side(plans, "head", folder, state_dir, request.offline)
        result.calls_sent = base_records.sent + head_records.sent
        result.recipes = [_recipe_review(p, base_records, head_records) for p in plans]
    markdown, _ = out.write(result, folder)
    review_html.write(result, folder)
    return _verdict(result, request.fail_on, display_path(markdown))


# --- what changed -------------------------------------------------------------------


def _plans(base: Side, head: Side, state_dir: Path, request: ReviewRequest) -> list[_Plan]:
    by_name = {recipe.name: recipe for recipe in base.recipes}
    store = Store.existing(state_dir)
    try:
        return [_plan(recipe, by_name.get(recipe.name), store, request) for recipe in head.recipes]
    except (ItemError, StoreError) as exc:
        raise UsageError(exc.message) from None
    finally:
        if store is not None:
            store.close()


def _plan(head: Recipe, base: Recipe | None, store: Store | None, request: ReviewRequest) -> _Plan:
    every = make_plan([head], store, None).items
    items, skipped = _sample(head, every, request)
    only = {head.name: frozenset(items)}
    head_keys = {p.item: p.request_keys for p in every if p.item in items}
    base_keys = (
        {p.item: p.request_keys for p in make_plan([base], store, None, only_items=only).items}
        if base is not None
        else {}
    )
    status: dict[str, tuple[str, str]] = {}
    for name in head.graph.order():
        task = head.tasks[name]
        if not task.asks_model:
            continue  # an export asks nothing: nothing to compare
        before = base.tasks.get(name) if base is not None else None
        status[name] = _task_status(task, before, items, head_keys, base_keys, status)
    return _Plan(head, base, items, skipped, status)


def _task_status(
    task: Task,
    before: Task | None,
    items: Sequence[str],
    head_keys: Mapping[str, Mapping[str, str | None]],
    base_keys: Mapping[str, Mapping[str, str | None]],
    earlier: Mapping[str, tuple[str, str]],
) -> tuple[str, str]:
    if before is None or not before.asks_model:
        return out.ADDED, "new task"
    name = task.name
    keys = [(base_keys.get(i, {}).get(name), head_keys.get(i, {}).get(name)) for i in items]
    if any(b is not None and h is not None and b != h for b, h in keys):
        return out.CHANGED, "its request changed"
    if _expectations(task) != _expectations(before):
        return out.CHANGED, "its expectations changed"
    changed_needs = [n for n in task.needs if earlier.get(n, (out.UNCHANGED,))[0] != out.UNCHANGED]
    if changed_needs:
        return out.AFFECTED, f"needs {', '.join(changed_needs)}"
    if any(b is None or h is None for b, h in keys):
        # Not known before running (a need's reply is not cached): run it to see.
        return out.CHANGED, "its request is not known until it runs"
    return out.UNCHANGED, ""


def _expectations(task: Task) -> list[object]:
    """What decides the task's checks: each one whole (a judge's model and its options,
    a severity), and the task's pass_rate."""
    return [
        task.pass_rate,
        *(replace(e, line=0, text=None) for e in task.expectations),
        *(e.text.source for e in task.expectations if e.text is not None),
    ]


def _sample(
    recipe: Recipe, planned: Sequence[ItemPlan], request: ReviewRequest
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The items to compare, and those skipped for want of a transcript."""
    known = {p.item: p.transcript_known for p in planned}
    if recipe.review_items:
        unknown = [name for name in recipe.review_items if name not in known]
        if unknown:
            raise UsageError(
                f"{recipe.display}: review.items names {unknown[0]!r}, which is not one of "
                f"its items{suggest(unknown[0], list(known))}"
            )
        chosen = list(recipe.review_items)
    else:
        size = request.sample or recipe.review_sample or DEFAULT_SAMPLE
        ordered = sorted(known, key=lambda name: _stable(recipe.name, name))
        ready = [name for name in ordered if known[name]]
        waiting = [name for name in ordered if not known[name]]
        chosen = (ready + waiting)[:size]
    if request.transcribe:
        return tuple(chosen), ()
    return tuple(n for n in chosen if known[n]), tuple(n for n in chosen if not known[n])


def _stable(recipe: str, item: str) -> str:
    return hashlib.sha256(f"{recipe}\0{item}".encode()).hexdigest()


# --- running both sides ---------------------------------------------------------------


def _to_run(recipe: Recipe, names: Iterable[str]) -> Recipe:
    """``recipe`` with only the tasks ``names`` and every task they need, at any depth."""
    keep: set[str] = set()
    pending = [n for n in names if n in recipe.tasks]
    while pending:
        name = pending.pop()
        if name not in keep:
            keep.add(name)
            pending.extend(n for n in recipe.tasks[name].needs if n in recipe.tasks)
    tasks = {n: t for n, t in recipe.tasks.items() if n in keep}
    return replace(recipe, tasks=MappingProxyType(tasks))


def _compared(plan: _Plan) -> list[str]:
    return [name for name, (status, _) in plan.status.items() if status != out.UNCHANGED]


def _side_recipes(plans: Sequence[_Plan], side: str) -> list[Recipe]:
    chosen = []
    for plan in plans:
        recipe = plan.head if side == "head" else plan.base
        if recipe is None or not plan.items:
            continue
        derived = _to_run(recipe, _compared(plan))
        if derived.tasks:
            chosen.append(derived)
    return chosen


def _only(plans: Sequence[_Plan]) -> dict[str, frozenset[str]]:
    return {plan.head.name: frozenset(plan.items) for plan in plans}


def _check_budget(plans: Sequence[_Plan], state_dir: Path, request: ReviewRequest) -> None:
    """Refuse before anything is sent when the calls to send exceed --budget."""
    if request.offline or request.budget is None:
        return
    store = Store.existing(state_dir)
    try:
        calls = sum(
            make_plan(_side_recipes(plans, side), store, None, only_items=_only(plans)).calls
            for side in ("base", "head")
        )
    finally:
        if store is not None:
            store.close()
    if calls > request.budget:
        raise UsageError(
            f"this review would send {calls} LLM calls, over --budget {request.budget}; "
            "nothing was sent (compare fewer items with --sample, or raise --budget)"
        )


@dataclass
class _Records:
    by_key: dict[tuple[str, str, str], TaskRecord]  # (recipe, item, task)
    sources: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    sent: int = 0


def _run_side(
    plans: Sequence[_Plan], side: str, folder: Path, state_dir: Path, offline: bool
) -> _Records:
    """Run one side's changed and affected tasks over the sample; their records."""
    recipes = _side_recipes(plans, side)
    records = _Records({})
    if not recipes:
        return records
    where = folder / side
    setup = configure(recipes, manifest=where / MANIFEST_FILE, out=where, offline=offline)
    setup = replace(setup, options=replace(setup.options, only_items=_only(plans)))
    click.echo(f"review: running the {side} side ({len(recipes)} recipe(s))", err=True)
    ran = execute(recipes, setup, PlainProgress(sys.stderr), state_dir)
    if ran.interrupted:
        raise _Interrupted()
    if ran.outcome is None:
        return records
    for item in stream_item_records(ran.outcome.manifest):
        records.sources[(item.recipe, item.item)] = (item.kind, item.source)
        for task in item.tasks:
            records.by_key[(item.recipe, item.item, task.task)] = task
            records.sent += int(task.asked)
    return records


class _Interrupted(UsageError):
    exit_code = EXIT_INTERRUPTED

    def __init__(self) -> None:
        super().__init__("interrupted: review.md was not written")


# --- the review -----------------------------------------------------------------------


def _recipe_review(plan: _Plan, base: _Records, head: _Records) -> out.RecipeReview:
    name = plan.head.name
    result = out.RecipeReview(name, plan.head.display, items=list(plan.items))
    result.skipped = list(plan.skipped)
    result.sources = {
        item: source
        for item in plan.items
        if (source := head.sources.get((name, item)) or base.sources.get((name, item)))
    }
    result.head_text = _read(str(plan.head.path)) or ""
    result.base_text = (_read(str(plan.base.path)) or "") if plan.base else ""
    result.removed = [t for t in (plan.base.tasks if plan.base else {}) if t not in plan.head.tasks]
    for task, (status, why) in plan.status.items():
        if status == out.UNCHANGED:
            result.unchanged.append(task)
            continue
        items = tuple(
            out.ItemComparison(
                item,
                _outcome(base.by_key.get((name, item, task))),
                _outcome(head.by_key.get((name, item, task))),
            )
            for item in plan.items
        )
        result.tasks.append(out.TaskComparison(task, status, why, items))
    return result


def _outcome(record: TaskRecord | None) -> out.Outcome:
    if record is None or record.status == "skipped":
        return out.Outcome(out.NOT_COMPARED, error=record.error if record else None)
    if record.status != "ok" and not record.asked and not record.cached:
        # Never asked (offline with no cached reply, or no LLM): nothing to compare.
        return out.Outcome(out.NOT_COMPARED, error=record.error)
    return out.Outcome(
        record.status,
        text=_read(record.output),
        error=record.error,
        expectations=tuple(
            out.Expectation(e.expect, e.passed, e.message, failing=e.severity != "warn")
            for e in record.expectations
        ),
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        cached=record.cached,
        cost_usd=record.cost_usd,
    )


def _read(output: str | None) -> str | None:
    if not output:
        return None
    try:
        return Path(output).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _verdict(result: out.Review, fail_on: str, markdown: str) -> int:
    regressions = result.regressions()
    for regression in regressions:
        click.echo(f"regression: {regression}", err=True)
    for missing in result.not_compared():
        click.echo(f"not compared: {missing}", err=True)
    changes = result.changes()
    click.echo(
        f"{changes} output(s) changed, {len(regressions)} regression(s), "
        f"{result.calls_sent} LLM call(s) sent; see {markdown}",
        err=True,
    )
    if fail_on == "never":
        return EXIT_OK
    if fail_on == "change" and (changes or regressions):
        return EXIT_FAILED
    return EXIT_FAILED if regressions else EXIT_OK
