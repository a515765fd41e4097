"""One item's work, each part when the executor gives it its turn: its transcript
settled (paid for at most once), then, once the item has room, loaded and written,
and its tasks run, each as soon as the tasks it needs (the task graph) are done."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from runner.execute import comparison
from runner.execute.ask import Asker
from runner.execute.claims import Claims
from runner.execute.comparison import Beside
from runner.execute.export import Exporter
from runner.execute.loading import Obtained, Settled, TranscriptLoader
from runner.execute.options import RunOptions
from runner.execute.phases import step
from runner.execute.prepared import PreparedRecipe
from runner.execute.services import Services
from runner.execute.task_work import TaskWork, not_run, skipped
from runner.execute.transcribe import Transcriber
from runner.items import Item
from runner.prompt.views import TaskResultView, TranscriptView
from runner.recipe.model import TRANSCRIPT_FILE, Task
from runner.results.outputs import item_dir, write_transcript
from runner.results.records import ItemRecord
from runner.serial_thread import SerialThread
from runner.store import Store

# Each task's result, by task name: None when it failed or did not run.
Results = dict[str, TaskResultView | None]


class ItemWork:
    """Settles each item's transcript, then works on it: the transcript written, the
    tasks run. Each item's transcript comes from the
    :class:`~runner.execute.transcribe.Transcriber` (ledger, store, single flight), each
    task's reply from the :class:`~runner.execute.ask.Asker` (reply cache, single flight)."""

    def __init__(
        self,
        services: Services,
        store: Store | None,
        options: RunOptions,
        claims: Claims,
        files: SerialThread,
    ) -> None:
        self.options = options
        self.transcriber = Transcriber(
            services.transcripts,
            store,
            offline=options.offline,
            deadline=options.transcript_deadline,
            claims=claims,
            speech=services.speech,
        )
        self.loader = TranscriptLoader(services.transcripts, store, offline=options.offline)
        self.comparison = comparison.Comparison(self.transcriber, self.loader)
        asker = Asker(
            services, store, use_cache=options.use_cache, offline=options.offline, claims=claims
        )
        exporter = Exporter(services.transcripts, offline=options.offline)
        self.tasks = TaskWork(asker, exporter, files, options.context_windows)
        # Output files are written on one thread of their own: off the event loop (a
        # slow disk stalls no request), without a hand-off to a pool per file.
        self._files = files

    async def settle(
        self, prepared: PreparedRecipe, item: Item, record: ItemRecord
    ) -> tuple[Path, Settled, list[Beside]]:
        """The item's folder, and its transcript once complete (not yet in hand); the
        compared blocks' transcripts (:mod:`comparison`) meanwhile."""
        folder = item_dir(prepared.recipe, item, prepared.engine, self.options.out)
        record.folder = str(folder)
        primary = self.transcriber.settle(prepared.recipe, item, record)
        if not comparison.wanted(prepared.recipe):
            return folder, await primary, []
        settled, besides = await self.comparison.settle(prepared.recipe, item, record, primary)
        return folder, settled, besides

    async def work_on(
        self,
        prepared: PreparedRecipe,
        item: Item,
        folder: Path,
        settled: Settled,
        record: ItemRecord,
        results: Results,
        besides: Sequence[Beside] = (),
    ) -> None:
        """Load and write the transcript, check it and the compared ones (``besides``),
        then run the tasks; each task's record joins ``record`` and each result joins
        ``results`` as soon as it exists."""
        obtained = await self.loader.load(
            settled,
            sentences=prepared.needs_sentences,
            paragraphs=prepared.needs_paragraphs,
            words=prepared.needs_words,
        )
        transcript = obtained.transcript
        record.transcript_id = transcript.id
        record.audio_duration = _seconds(transcript.audio_duration)
        record.speech_model = transcript.speech_model_used
        if not obtained.local:
            # File writes run in a thread: on the event loop they would hold back every
            # other item's requests (and the reading of 429s) while the disk works.
            with step("writing"):
                await self._files.call(write_transcript, folder / TRANSCRIPT_FILE, transcript)
        if comparison.wanted(prepared.recipe):
            await self.comparison.check(
                prepared.recipe,
                prepared.engine,
                item,
                record,
                transcript.text,
                besides,
            )
        view = obtained.view
        await self._run_tasks(prepared, item, folder, obtained, view, record, results)
        if any(t.status in ("failed", "skipped") for t in record.tasks):
            record.status = "failed"

    async def _run_tasks(
        self,
        prepared: PreparedRecipe,
        item: Item,
        folder: Path,
        obtained: Obtained,
        view: TranscriptView,
        item_record: ItemRecord,
        results: Results,
    ) -> None:
        """Run the item's tasks; each record joins ``item_record`` as soon as it exists,
        so an interrupted item still shows the tasks that finished."""
        done: dict[str, asyncio.Future[None]] = {
            task.name: asyncio.get_running_loop().create_future() for task in prepared.tasks
        }
        records = item_record.tasks
        graph = prepared.graph

        async def when_ready(task: Task) -> None:
            unavailable = self.options.llm_unavailable
            if task.asks_model and task.provider is None and unavailable is not None:
                records.append(not_run(task, unavailable))
                done[task.name].set_result(None)
                return
            for need in graph.needs(task.name):
                await done[need]
            failed = graph.failed_needs(task.name, results)
            if failed:
                records.append(skipped(task, failed))
                done[task.name].set_result(None)
                return
            inputs = {n: r for n in graph.needs(task.name) if (r := results[n]) is not None}
            record, result = await self.tasks.run(
                prepared, item, task, folder, obtained, view, inputs
            )
            records.append(record)
            results[task.name] = result
            done[task.name].set_result(None)

        async with asyncio.TaskGroup() as group:
            for task in prepared.tasks:
                group.create_task(when_ready(task))
        order = {task.name: i for i, task in enumerate(prepared.tasks)}
        records.sort(key=lambda r: order[r.task])


def _seconds(value: float | int | None) -> float | None:
    return float(value) if value is not None else None
