"""One task of one item: its request built, asked through the reply cache (the task's
model, then its client-side fallbacks), and its reply finished into files; or, for an
export, the transcript written in its format. Each failure is the task's own: it is
caught here and recorded, and the item's other tasks go on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

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
from runner.execute.loading import Obtained
from runner.execute.phases import step
from runner.execute.prepared import PreparedRecipe
from runner.items import Item
from runner.prompt.payloads import Payload, build_payload, task_context
from runner.prompt.views import TaskResultView, TranscriptView
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


class TaskWork:
    """Runs one task of an item, once the tasks it needs are done."""

    def __init__(self, asker: Asker, exporter: Exporter, files: SerialThread) -> None:
        self.asker = asker
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
        """The task's record, and its result (None when it failed)."""
        if task.export is not None:
            return await self._export(task, item, folder, obtained)
        return await self._ask(prepared, item, task, folder, obtained, view, inputs)

    async def _ask(
        self,
        prepared: PreparedRecipe,
        item: Item,
        task: Task,
        folder: Path,
        obtained: Obtained,
        view: TranscriptView,
        results: Mapping[str, TaskResultView],
    ) -> tuple[TaskRecord, TaskResultView | None]:
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
            return record.fail(problem.message), None
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
    ) -> tuple[TaskRecord, TaskResultView | None]:
        try:
            began = time.monotonic()
            task, _, completion = await self.asker.first_reply(candidates, label, record)
        except ItemError as exc:
            return record.fail(exc.message), None
        record_completion(record, completion, time.monotonic() - began, task)
        record.fallback_used = record.fallback_used or task is not candidates[0][0]
        record.provider = task.provider.name if task.provider is not None else None
        reply = reply_text(completion)
        reason = unusable(task, completion)
        if reason is not None:  # nothing is written or cached: the next run asks again
            return record.fail(reason), None
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
            return record.fail(exc.message), None
        return record, result

    async def _export(
        self, task: Task, item: Item, folder: Path, obtained: Obtained
    ) -> tuple[TaskRecord, TaskResultView | None]:
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
            return record.fail(exc.message), None
        return record, result
