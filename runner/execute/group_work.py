"""Group tasks (``over:``): a task run once over a group of items, after every item of
the group has finished the tasks it needs.

Memory stays flat for the items' part of a run: while items work, the executor keeps
only each item's folder and which tasks gave a result (:class:`Finished`). When the
groups run, each item's transcript and the results it needs are read back from its
folder (and the state store's kept sentences and paragraphs), one group at a time.

A group task is asked like any task: through the reply cache (a rerun sends
nothing), ledgered, refused before sending when it does not fit its model's window,
read in slices of items with ``long: map-reduce``, finished into files by
:func:`~runner.execute.finish.finish`, recorded in ``run.json`` as an entry of kind
``group``. A LeMUR group task sends every item's transcript id in one request, up to
LeMUR's 100 (more are asked in requests of 100, the replies written one after the
other, and the record says how many).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import ItemError, SourceUnreadable, TemplateProblem
from runner.execute.map_reduce import PartsAsked, ask_parts
from runner.execute.prepared import PreparedRecipe
from runner.execute.segments import PARTS, Found, Part, Source, transcript_view
from runner.execute.task_work import TaskWork, asked_record, not_run
from runner.items import Group
from runner.prompt.parts import MapPart, empty_view, entry_size, fitting
from runner.prompt.payloads import (
    LEMUR_MAX_TRANSCRIPTS,
    Payload,
    group_payload,
    group_task_context,
    lemur_payload,
    reduce_payload,
    request_text,
)
from runner.prompt.views import (
    GroupView,
    ItemEntry,
    Namespace,
    TaskResultView,
    TranscriptView,
)
from runner.prompt.window import Overflow, overflow
from runner.recipe.fallbacks import client_fallbacks
from runner.recipe.model import MAP_REDUCE, TRANSCRIPT_FILE, InputKind, Task, TaskApi
from runner.results.outputs import contained, group_dir
from runner.results.recorder import Recorder
from runner.results.records import GROUP_KIND, ItemRecord, TaskRecord
from runner.serial_thread import SerialThread
from runner.store import Store
from runner.transcript.model import Transcript, load_saved


@dataclass(frozen=True, slots=True)
class Finished:
    """What a group task needs of a finished item: where its files are, and which of
    its tasks gave a result (the others failed, or the item failed before them)."""

    folder: Path | None
    results: frozenset[str]


class GroupWork:
    """Runs a recipe's group tasks once its items are done."""

    def __init__(
        self,
        tasks: TaskWork,
        store: Store | None,
        files: SerialThread,
        out: Path | None,
        llm_unavailable: str | None = None,
    ) -> None:
        self.tasks = tasks
        self.llm_unavailable = llm_unavailable  # (see RunOptions)
        self.store = store
        self._files = files
        self.out = out

    async def run(
        self,
        prepared: PreparedRecipe,
        finished: Mapping[str, Finished],
        recorder: Recorder,
    ) -> None:
        """Each group of each ``over:``, its tasks in the graph's order, one record per
        group. ``finished``: the recipe's items, by name."""
        for over, groups in prepared.groups.items():
            tasks = [t for t in prepared.group_tasks if t.over == over]
            for group in groups:
                record, results = await self._group(prepared, tasks, group, finished)
                await recorder.finished(prepared.recipe, record, results)

    async def _group(
        self,
        prepared: PreparedRecipe,
        tasks: Sequence[Task],
        group: Group,
        finished: Mapping[str, Finished],
    ) -> tuple[ItemRecord, dict[str, TaskResultView | None]]:
        recipe = prepared.recipe
        record = ItemRecord(
            recipe=recipe.name,
            item=f"groups/{group.name}",
            source=_described(group),
            recipe_file=recipe.display,
            kind=GROUP_KIND,
            status="ok",
        )
        results: dict[str, TaskResultView | None] = {}
        try:
            folder = group_dir(recipe, group.name, self.out)
            record.folder = str(folder)
            views = await self._views(group, finished)
        except ItemError as exc:
            record.status, record.error = "failed", exc.message
            return record, results
        for task in tasks:
            task_record, result = await self._task(prepared, task, group, finished, views, folder)
            record.tasks.append(task_record)
            results[task.name] = result
        if any(t.status in ("failed", "skipped") for t in record.tasks):
            record.status = "failed"
        return record, results

    async def _views(
        self, group: Group, finished: Mapping[str, Finished]
    ) -> dict[str, TranscriptView]:
        """Each finished member's transcript, read back from its folder (or its saved
        file), with the sentences and paragraphs the state store keeps."""
        views: dict[str, TranscriptView] = {}
        for item in group.members:
            done = finished.get(item.name)
            if done is None or done.folder is None:
                continue  # (failed before its folder: its tasks report it)
            written = done.folder / TRANSCRIPT_FILE
            source = Path(item.source) if item.kind is InputKind.TRANSCRIPT_FILE else written
            transcript = await self._files.call(_read_transcript, source)
            views[item.name] = transcript_view(transcript, await self._kept(transcript))
        return views

    async def _kept(self, transcript: Transcript) -> dict[Part, Found]:
        store = self.store
        if store is None or not transcript.id:
            return {}
        found: dict[Part, Found] = {}
        for part in PARTS:
            data = await store.call(store.transcript_get, transcript.id, part)
            if data is not None:
                found[part] = Found(data, Source.KEPT)
        return found

    async def _task(
        self,
        prepared: PreparedRecipe,
        task: Task,
        group: Group,
        finished: Mapping[str, Finished],
        views: Mapping[str, TranscriptView],
        folder: Path,
    ) -> tuple[TaskRecord, TaskResultView | None]:
        record = asked_record(task)
        if task.provider is None and self.llm_unavailable is not None:
            return not_run(task, self.llm_unavailable), None
        missing = [
            item.name
            for item in group.members
            if item.name not in views or not set(task.needs) <= finished[item.name].results
        ]
        if missing:
            record.status = "skipped"
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            record.error = (
                f"not run because item(s) {shown} of the group did not finish the tasks it needs"
            )
            return record, None
        try:
            entries = [
                ItemEntry(
                    item.view(prepared.recipe),
                    views[item.name],
                    Namespace("tasks", await self._results(prepared, task, finished[item.name])),
                )
                for item in group.members
            ]
        except ItemError as exc:
            return record.fail(exc.message), None
        label = f"{prepared.recipe.name}/groups/{group.name}/{task.name}"
        try:
            candidates, parts = await self._candidates(prepared, task, group, entries, label)
        except ItemError as exc:
            return record.fail(exc.message), None
        blank = empty_view(next(iter(views.values()))) if views else None
        try:
            record, result, _ = await self.tasks.ask_and_finish(
                candidates, label, folder, blank or _NO_TRANSCRIPT, record, parts
            )
            return record, result
        finally:
            if record.cache_key:
                await self.tasks.asker.release(record.cache_key)

    async def _results(
        self, prepared: PreparedRecipe, task: Task, done: Finished
    ) -> dict[str, TaskResultView]:
        """The results ``task`` needs of one item, read back from the item's folder."""
        assert done.folder is not None
        folder = done.folder
        found = {}
        for need in task.needs:
            other = prepared.recipe.tasks[need]
            path = contained(folder, other.output)
            text = await self._files.call(_read_output, path)
            try:
                data = json.loads(text) if other.structured else None
            except ValueError:
                raise SourceUnreadable(f"{path} is not the JSON task {need!r} wrote") from None
            found[need] = TaskResultView.build(need, text, data, structured=other.structured)
        return found

    async def _candidates(
        self,
        prepared: PreparedRecipe,
        task: Task,
        group: Group,
        entries: Sequence[ItemEntry],
        label: str,
    ) -> tuple[list[tuple[Task, Payload]], PartsAsked | None]:
        """The request(s) of the group: whole when it fits; else in slices of items
        (``long: map-reduce``) and combined; LeMUR's in batches of 100 ids."""
        recipe, engine = prepared.recipe, prepared.engine
        view = GroupView(group.name, group.by, group.value)

        def context_of(chosen: Sequence[ItemEntry]) -> dict[str, Any]:
            return group_task_context(recipe, view, chosen)

        def payload_of(candidate: Task, chosen: Sequence[ItemEntry]) -> Payload:
            return group_payload(engine, candidate, recipe, view, chosen)

        try:
            whole = [(c, payload_of(c, entries)) for c in (task, *client_fallbacks(task, recipe))]
            if task.api is TaskApi.LEMUR and len(entries) > LEMUR_MAX_TRANSCRIPTS:
                batches = [
                    entries[i : i + LEMUR_MAX_TRANSCRIPTS]
                    for i in range(0, len(entries), LEMUR_MAX_TRANSCRIPTS)
                ]
                parts = [
                    MapPart(payload_of(task, b), items=tuple(e.item.name for e in b))
                    for b in batches
                ]
                asked = await ask_parts(self.tasks.asker, task, parts, label)
                return [(task, _lemur_combined(task, whole[0][1], asked))], asked
            too_long = overflow(task, whole[0][1], catalog=self.tasks.windows)
            if too_long is None:
                return whole, None
            if task.long != MAP_REDUCE:
                raise ItemError(too_long.message())
            found = fitting(
                task,
                list(entries),
                entry_size,
                lambda chosen: payload_of(task, chosen),
                whole[0][1],
                sum(entry_size(e) for e in entries),
                self.tasks.windows,
            )
            if isinstance(found, Overflow):
                raise ItemError(f"even one item at a time, {found.message()}")
            slices = [MapPart(p, items=tuple(e.item.name for e in run)) for run, p in found]
            asked = await ask_parts(self.tasks.asker, task, slices, label)
            request = request_text(engine, task, context_of([]))
            reduced = reduce_payload(engine, task, context_of(entries), asked.views, request)
            if (problem := overflow(task, reduced, catalog=self.tasks.windows)) is not None:
                raise ItemError(f"the slices' replies together are too long: {problem.message()}")
            return [(task, reduced)], asked
        except TemplateProblem as problem:
            raise ItemError(problem.message) from None


def _lemur_combined(task: Task, whole: Payload, asked: PartsAsked) -> Payload:
    """A group of more than 100 transcripts, asked in batches: one more LeMUR request
    combines the batches' replies, given as its ``input_text``."""
    batches = "\n\n".join(
        f"--- Transcripts {p.items[0]} to {p.items[-1]} ---\n{p.text}" for p in asked.views
    )
    prompt = (
        f"{whole.body['prompt']}\n\nThe transcripts were read in {len(asked.views)} batches "
        f"of up to {LEMUR_MAX_TRANSCRIPTS}; the input holds the answer for each batch. Combine "
        "them into one answer."
    )
    return lemur_payload(task, prompt, [], input_text=batches)


def _described(group: Group) -> str:
    if group.by is None:
        return f"over: all ({len(group.members)} items)"
    return f"over: group_by {group.by} = {group.value} ({len(group.members)} items)"


def _read_transcript(path: Path) -> Transcript:
    if not path.is_file():
        raise SourceUnreadable(f"the transcript {path} of an item of the group is not on disk")
    return load_saved(path)


def _read_output(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceUnreadable(f"cannot read {path}: {exc.strerror}") from None
    return text[:-1] if text.endswith("\n") else text


_NO_TRANSCRIPT = TranscriptView.build(Transcript(id=None, status="completed"))
