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
from runner.execute.phases import step
from runner.execute.prepared import PreparedRecipe
from runner.items import Item
from runner.prompt.payloads import Payload, build_payload, task_context
from runner.prompt.views import TaskResultView, TranscriptView, folder_context
from runner.recipe.fallbacks import client_fallbacks
from runner.recipe.model import Task
from runner.results.manifest import NOT_RUN, TaskRecord
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

    def __init__(self, asker: Asker, exporter: Exporter, files: SerialThread) -> None:
        self.asker = asker
        self.grader = Grader(asker)  # judge, similar_to, grounded: after the result
        self.exporter = exporter
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
        record = TaskRecord(
            task=task.name,
            status="ok",
            line=task.line,
            api=task.api.value,
            model_requested=task.requested_model,
        )
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
        try:
            return await self._ask_and_finish(candidates, label, folder, view, record)
        finally:
            if record.cache_key:
                await self.asker.release(record.cache_key)

    async def _ask_and_finish(
        self,
        candidates: Sequence[tuple[Task, Payload]],
        label: str,
        folder: Path,
        view: TranscriptView,
        record: TaskRecord,
    ) -> _Done:
        try:
            began = time.monotonic()
            task, _, completion = await self.asker.first_reply(candidates, label, record)
        except ItemError as exc:
            return record.fail(exc.message), None, None
        record_completion(record, completion, time.monotonic() - began, task)
        record.fallback_used = record.fallback_used or task is not candidates[0][0]
        record.provider = task.provider.name if task.provider is not None else None
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
        except ItemError as exc:
            if isinstance(exc, ApiError):
                record.retries = exc.retries
            return record.fail(exc.message), None, None
        try:
            with step("writing"):
                result = await self._files.call(
                    write_export, task, folder, obtained.transcript, fetched, item.name, record
                )
        except ItemError as exc:  # an output that cannot be written (a folder in the way)
            return record.fail(exc.message), None, None
        return record, result, None
