"""What ``plan`` counts for prompts over their model's window and for group tasks.

A prompt over its window is what the run refuses before sending (listed, with its size
and the window), unless its task reads it in parts (``long: map-reduce``): then the
parts are built as the run builds them (:mod:`runner.prompt.parts`), each looked up in
the reply cache, and the request combining them too once every part's reply is kept.
A group task (``over:``) is counted once per group, from the items' transcripts and
cached results when all are known before the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.api.types import Completion
from runner.execute.ask import completion_from_json, reply_text
from runner.items import Item, groups_of
from runner.prompt.parts import (
    MapPart,
    PartView,
    empty_view,
    entry_size,
    fitting,
    transcript_parts,
)
from runner.prompt.payloads import (
    Payload,
    build_payload,
    group_payload,
    group_task_context,
    reduce_payload,
    request_text,
)
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import (
    GroupView,
    ItemEntry,
    Namespace,
    TaskResultView,
    TranscriptView,
)
from runner.prompt.window import Overflow, overflow, prompt_tokens
from runner.recipe.model import MAP_REDUCE, Recipe, Task, TaskApi
from runner.store import Store, request_key


@dataclass
class Known:
    """What plan knows of an item before the run: its transcript view (None: not
    known yet) and its tasks' results from cached replies (None: not known)."""

    view: TranscriptView | None
    results: Mapping[str, TaskResultView | None]


@dataclass
class Counted:
    """The calls of one task (or one group's tasks), as plan counts them."""

    calls: int = 0
    cached: int = 0
    input_tokens: int = 0
    unknown: int = 0  # calls whose prompt is not known before the run
    too_long: list[str] = field(default_factory=list)
    models: dict[str, int] = field(default_factory=dict)
    keys: dict[str, str | None] = field(default_factory=dict)
    # Calls to send by where they go (see ``destination``): what the forecast paces.
    to_send: dict[str, int] = field(default_factory=dict)
    # A task read in parts whose every part and combining request are cached: its
    # answer, which the task's judges and the tasks that need it read, as in the run.
    answer: Completion | None = None

    def add(self, other: Counted) -> None:
        self.calls += other.calls
        self.cached += other.cached
        self.input_tokens += other.input_tokens
        self.unknown += other.unknown
        self.too_long += other.too_long


def count_sized(
    task: Task,
    whole: Payload,
    store: Store | None,
    use_cache: bool,
    *,
    inserted_text: str = "",
    split: Callable[[], list[MapPart] | Overflow] | None = None,
    reduce: Callable[[Sequence[PartView]], Payload] | None = None,
    catalog: Mapping[str, int] | None = None,
) -> Counted:
    """A request not in the cache: one call when it fits; refused (listed) when it
    does not and its task is not ``long: map-reduce``; else its parts from ``split``
    and the request combining them (``reduce``, once every part's reply is kept)."""
    problem = overflow(task, whole, inserted_text=inserted_text, catalog=catalog)
    if problem is None:
        return Counted(calls=1, input_tokens=prompt_tokens(whole, inserted_text))
    if task.long != MAP_REDUCE or split is None or reduce is None:
        return Counted(too_long=[problem.message()])
    parts = split()
    if isinstance(parts, Overflow):
        return Counted(too_long=[parts.message()])
    counted = Counted()
    replies: list[PartView] = []
    for index, part in enumerate(parts, 1):
        kept = _cached(task, part.payload, store, use_cache)
        if kept is not None:
            counted.cached += 1
            replies.append(part.view(index, kept))
        else:
            counted.calls += 1
            counted.input_tokens += prompt_tokens(part.payload)
    if len(replies) < len(parts):
        counted.calls += 1  # the reduce, its prompt not known before the parts' replies
        counted.unknown += 1
        return counted
    combined = reduce(replies)
    found = None if store is None or not use_cache else store.reply_get(request_key(task, combined))
    if found is not None:
        counted.cached += 1
        counted.answer = completion_from_json(found.reply)
    else:
        counted.calls += 1
        counted.input_tokens += prompt_tokens(combined)
    return counted


def count_item_task(
    task: Task,
    engine: TemplateEngine,
    whole: Payload,
    view: TranscriptView,
    context_of: Callable[[TranscriptView], dict[str, Any]],
    store: Store | None,
    use_cache: bool,
    catalog: Mapping[str, int] | None = None,
) -> Counted:
    """One item's task whose whole request is not cached."""

    def payload_of(part: TranscriptView) -> Payload:
        return build_payload(
            engine, task, context_of(part), transcript_id=part.id, transcript_text=part.text
        )

    def reduce(parts: Sequence[PartView]) -> Payload:
        request = request_text(engine, task, context_of(empty_view(view)))
        return reduce_payload(engine, task, context_of(view), parts, request)

    return count_sized(
        task,
        whole,
        store,
        use_cache,
        inserted_text=view.text,
        split=lambda: transcript_parts(task, view, payload_of, whole, catalog),
        reduce=reduce,
        catalog=catalog,
    )


def destination(task: Task) -> str:
    """Where a task's request goes: a Gateway model's name (paced by its limit), else
    "lemur MODEL" or "server NAME MODEL"."""
    if task.provider is not None:
        return f"server {task.provider.name} {task.requested_model}"
    if task.api is TaskApi.LEMUR:
        return f"lemur {task.requested_model}"
    return task.requested_model


def count_groups(
    recipe: Recipe,
    engine: TemplateEngine,
    items: Sequence[Item],
    known: Mapping[str, Known],
    store: Store | None,
    use_cache: bool,
    catalog: Mapping[str, int] | None = None,
) -> list[tuple[str, Counted]]:
    """Each group's calls (its name, then what is counted), for every ``over:``."""
    found: dict[str, Counted] = {}
    # Each group's calls are counted task by task; what one task added goes to its
    # destination when the next begins (the body below has several ways out).
    last: tuple[Counted, str, int] | None = None

    def attribute() -> None:
        if last is not None:
            owner, where, before = last
            owner.to_send[where] = owner.to_send.get(where, 0) + owner.calls - before

    for task in recipe.ordered_tasks():
        if task.over is None:
            continue
        for group in groups_of(task.over.group_by, items):
            counted = found.setdefault(group.name, Counted())
            attribute()
            last = (counted, destination(task), counted.calls)
            model = task.requested_model
            counted.models[model] = counted.models.get(model, 0) + 1
            members = [known.get(item.name) for item in group.members]
            entries = [
                ItemEntry(item.view(recipe), m.view, Namespace("tasks", needed))
                for item, m in zip(group.members, members, strict=True)
                if m is not None
                and m.view is not None
                and len(needed := _needed(task, m.results)) == len(task.needs)
            ]
            if len(entries) < len(group.members):  # not known before the run
                counted.add(Counted(calls=1, unknown=1))
                counted.keys[task.name] = None
                continue
            view = GroupView(group.name, group.by, group.value)

            def context_of(chosen: Sequence[ItemEntry], view: GroupView = view) -> dict[str, Any]:
                return group_task_context(recipe, view, chosen)

            def payload_of(
                chosen: Sequence[ItemEntry], task: Task = task, view: GroupView = view
            ) -> Payload:
                return group_payload(engine, task, recipe, view, chosen)

            whole = payload_of(entries)
            counted.keys[task.name] = request_key(task, whole)
            if _cached(task, whole, store, use_cache) is not None:
                counted.cached += 1
                continue
            size = sum(entry_size(e) for e in entries)

            def split(
                entries: list[ItemEntry] = entries,
                payload_of: Callable[[Sequence[ItemEntry]], Payload] = payload_of,
                whole: Payload = whole,
                size: int = size,
                task: Task = task,
            ) -> list[MapPart] | Overflow:
                cut = fitting(task, entries, entry_size, payload_of, whole, size, catalog)
                if isinstance(cut, Overflow):
                    return cut
                return [MapPart(p, items=tuple(e.item.name for e in run)) for run, p in cut]

            def reduce(
                parts: Sequence[PartView],
                entries: list[ItemEntry] = entries,
                context_of: Callable[..., dict[str, Any]] = context_of,
                task: Task = task,
            ) -> Payload:
                request = request_text(engine, task, context_of([]))
                return reduce_payload(engine, task, context_of(entries), parts, request)

            counted.add(
                count_sized(
                    task, whole, store, use_cache, split=split, reduce=reduce, catalog=catalog
                )
            )
    attribute()
    return list(found.items())


def _needed(task: Task, results: Mapping[str, TaskResultView | None]) -> dict[str, TaskResultView]:
    return {n: r for n in task.needs if (r := results.get(n)) is not None}


def _cached(task: Task, payload: Payload, store: Store | None, use_cache: bool) -> str | None:
    """The cached reply's text to ``payload``, if the run would not send it."""
    if store is None or not use_cache:
        return None
    kept = store.reply_get(request_key(task, payload))
    return reply_text(completion_from_json(kept.reply)) if kept is not None else None
