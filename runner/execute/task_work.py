"""One task of one item: its request built, asked through the reply cache (the task's
model, then its client-side fallbacks), and its reply finished into files; or, for an
export, the transcript written in its format. Each failure is the task's own: it is
caught here and recorded, and the item's other tasks go on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.errors import ApiError, ItemError, TemplateProblem
from runner.execute.ask import Asker, record_completion, reply_text
from runner.execute.export import Exporter, write_export
from runner.execute.finish import (
    finish,
    light_processing,
    processed_or_failure,
    quotes_shortfall,
    unusable,
)
from runner.execute.graded import CheckInput, Grader
from runner.execute.loading import Obtained
from runner.execute.map_reduce import PartsAsked, ask_parts
from runner.execute.phases import step
from runner.execute.prepared import PreparedRecipe
from runner.items import Item
from runner.prompt.parts import empty_view, transcript_parts
from runner.prompt.payloads import (
    Payload,
    build_payload,
    reduce_payload,
    request_text,
    task_context,
)
from runner.prompt.views import TaskResultView, TranscriptView, folder_context
from runner.prompt.window import Overflow, overflow
from runner.recipe.fallbacks import answering_task, client_fallbacks
from runner.recipe.model import MAP_REDUCE, Task
from runner.results.records import NOT_RUN, TaskRecord
from runner.serial_thread import SerialThread


def not_run(task: Task, why: str) -> TaskRecord:
    """A task with nothing to ask (no key, no local server): said once, not a failure."""
    return TaskRecord(
        task=task.name,
        line=task.line,
        status=NOT_RUN,
        error=why,
        api=task.api.value,
        model_requested=task.requested_model,
    )


def asked_record(task: Task) -> TaskRecord:
    """The record of a task that asks a model, before it does (an item's or a group's)."""
    return TaskRecord(
        task=task.name,
        status="ok",
        line=task.line,
        api=task.api.value,
        model_requested=task.requested_model,
    )


def skipped(task: Task, failed: Sequence[str]) -> TaskRecord:
    """A task that did not run because tasks it needs failed."""
    return TaskRecord(
        task=task.name,
        line=task.line,
        status="skipped",
        error=f"not run because {', '.join(failed)} failed",
        api=task.api.value,
        model_requested=task.requested_model,
    )


# A task's record, its result for the tasks that need it (None when it failed), and
# its result's JSON (None when it has none), which its checks read.
_Done = tuple[TaskRecord, TaskResultView | None, Any]


class TaskWork:
    """Runs one task of an item, once the tasks it needs are done."""

    def __init__(
        self,
        asker: Asker,
        exporter: Exporter,
        files: SerialThread,
        windows: Mapping[str, int] | None = None,
    ) -> None:
        self.asker = asker
        self.grader = Grader(asker)  # judge, similar_to, grounded: after the result
        self.exporter = exporter
        self.windows = windows  # the Gateway's context windows, by model
        # The outputs' thread: file writes never hold the event loop.
        self._files = files

    async def run(
        self,
        prepared: PreparedRecipe,
        item: Item,
        task: Task,
        folder: Path,
        obtained: Obtained,
        view: TranscriptView,
        inputs: Mapping[str, TaskResultView],
    ) -> tuple[TaskRecord, TaskResultView | None]:
        """The task's record, and its result (None when it failed); its checks run
        once the result is written, graded ones too."""
        began = time.monotonic()
        if task.export is not None:
            record, result, data = await self._export(task, item, folder, obtained)
        else:
            record, result, data = await self._ask(
                prepared, item, task, folder, obtained, view, inputs
            )
        if result is not None and any(e.graded for e in task.expectations):
            context = folder_context(prepared.recipe, item.view(prepared.recipe))
            given = CheckInput(
                text=result.text,
                data=data,
                view=view,
                engine=prepared.engine,
                context=context,
                base=prepared.recipe.base_dir,
                label=f"{prepared.recipe.name}/{item.name}/{task.name}",
            )
            await self.grader.grade(task, record, given)
        # The real time it took, failed or not (JUnit's `time`): retries and judges included.
        record.seconds = round(time.monotonic() - began, 3)
        return record, result

    async def _ask(
        self,
        prepared: PreparedRecipe,
        item: Item,
        task: Task,
        folder: Path,
        obtained: Obtained,
        view: TranscriptView,
        results: Mapping[str, TaskResultView],
    ) -> _Done:
        record = asked_record(task)
        transcript = obtained.transcript
        try:
            context = task_context(prepared.recipe, item.view(prepared.recipe), task, view, results)
            candidates = [
                (
                    candidate,
                    build_payload(
                        prepared.engine,
                        candidate,
                        context,
                        transcript_id=transcript.id,
                        transcript_text=transcript.text,
                    ),
                )
                for candidate in (task, *client_fallbacks(task, prepared.recipe))
            ]
        except TemplateProblem as problem:
            return record.fail(problem.message), None, None
        label = f"{prepared.recipe.name}/{item.name}/{task.name}"
        too_long = overflow(
            task, candidates[0][1], inserted_text=transcript.text, catalog=self.windows
        )
        parts: PartsAsked | None = None
        if too_long is not None:
            if task.long != MAP_REDUCE:  # refused before anything is sent
                return record.fail(too_long.message()), None, None
            try:
                candidates, parts = await self._in_parts(
                    prepared, item, task, view, results, candidates[0][1], label
                )
            except ItemError as exc:
                return record.fail(exc.message), None, None
        try:
            return await self.ask_and_finish(candidates, label, folder, view, record, parts)
        finally:
            if record.cache_key:
                await self.asker.release(record.cache_key)

    async def _in_parts(
        self,
        prepared: PreparedRecipe,
        item: Item,
        task: Task,
        view: TranscriptView,
        results: Mapping[str, TaskResultView],
        whole: Payload,
        label: str,
    ) -> tuple[list[tuple[Task, Payload]], PartsAsked]:
        """``long: map-reduce``: the transcript's parts asked (each through the reply
        cache), and the request that combines them. Raises ItemError."""
        engine, recipe, shown = prepared.engine, prepared.recipe, item.view(prepared.recipe)

        def context_of(part: TranscriptView) -> dict[str, Any]:
            return task_context(recipe, shown, task, part, results)

        def payload_of(part: TranscriptView) -> Payload:
            return build_payload(
                engine, task, context_of(part), transcript_id=part.id, transcript_text=part.text
            )

        found = transcript_parts(task, view, payload_of, whole, self.windows)
        if isinstance(found, Overflow):
            raise ItemError(f"even split at its paragraphs, {found.message()}")
        asked = await ask_parts(self.asker, task, found, label)
        request = request_text(engine, task, context_of(empty_view(view)))
        reduced = reduce_payload(engine, task, context_of(view), asked.views, request)
        if (problem := overflow(task, reduced, catalog=self.windows)) is not None:
            raise ItemError(f"the parts' replies together are too long: {problem.message()}")
        return [(task, reduced)], asked

    async def ask_and_finish(
        self,
        candidates: Sequence[tuple[Task, Payload]],
        label: str,
        folder: Path,
        view: TranscriptView,
        record: TaskRecord,
        parts: PartsAsked | None = None,
    ) -> _Done:
        """The first of ``candidates`` to answer, finished into files (a group task's
        too); ``parts``: what its map asked, joined to its record."""
        try:
            began = time.monotonic()
            task, _, completion = await self.asker.first_reply(candidates, label, record)
        except ItemError as exc:
            return record.fail(exc.message), None, None
        record_completion(record, completion, time.monotonic() - began, task)
        if parts is not None:
            parts.add_to(record)
        record.fallback_used = record.fallback_used or task is not candidates[0][0]
        record.provider = task.provider.name if task.provider is not None else None
        # A reply is finished by the settings of the model that gave it: the Gateway's
        # fallback that answered has its own schema and post-processing.
        task = answering_task(task, completion.model)
        reply = reply_text(completion)
        reason = unusable(task, completion)
        if reason is not None:  # nothing is written or cached: the next run asks again
            return record.fail(reason), None, None
        outcome = (
            processed_or_failure(task, reply, view)
            if light_processing(task, reply)
            else await asyncio.to_thread(processed_or_failure, task, reply, view)
        )
        # A quotes reply with too few quotes of the transcript is written (its verdicts
        # are worth reading) but never kept: the next run asks again.
        clean = not isinstance(outcome, Exception) and quotes_shortfall(task, outcome.data) is None
        await self.asker.keep_or_forget(record, clean=clean)
        try:
            with step("writing"):
                result = await self._files.call(finish, task, folder, view, reply, outcome, record)
        except ItemError as exc:  # an output that cannot be written (a folder in the way)
            return record.fail(exc.message), None, None
        return record, result, None if isinstance(outcome, Exception) else outcome.data

    async def _export(self, task: Task, item: Item, folder: Path, obtained: Obtained) -> _Done:
        """An export task: AssemblyAI's subtitles where it has them, else built here."""
        assert task.export is not None
        record = TaskRecord(task=task.name, status="ok", line=task.line, api=task.api.value)
        try:
            fetched = await self.exporter.fetched(
                task.export, obtained.transcript, not obtained.on_assemblyai
            )
        except ItemError as exc:  # built from the words instead, and said
            if isinstance(exc, ApiError):
                record.retries = exc.retries
            fetched = None
            record.note = (
                f"AssemblyAI's /{task.export.format} download failed ({exc.message}); "
                "the subtitles were built here from the words"
            )
        try:
            with step("writing"):
                result = await self._files.call(
                    write_export, task, folder, obtained.transcript, fetched, item.name, record
                )
        except ItemError as exc:  # an output that cannot be written (a folder in the way)
            return record.fail(exc.message), None, None
        return record, result, None
