"""The async scheduler: items flow through transcription, then their task graph.

* Items flow in two stages. Up to ``items_in_flight`` wait for their transcripts,
  holding only a job id; up to ``items_working`` of them hold a transcript and run their
  tasks. So the account's limits stay busy and memory stays flat for 10,000-item
  runs: a finished job's body is fetched only when its item has room. The HTTP
  layer (:mod:`runner.api.http`) bounds uploads, submissions, polls and LLM
  calls separately, with retries and rate limits.
* Each item's transcript comes from :class:`~runner.execute.transcribe.Transcriber`
  (ledger, store, single flight); each task's reply from
  :class:`~runner.execute.ask.Asker` (reply cache, single flight); each reply becomes
  files in :func:`~runner.execute.finish.finish`.
* Within an item, each task starts as soon as the tasks it ``needs`` finished.
* One item's failure (any :class:`~runner.errors.ItemError`) never stops the others;
  every outcome lands in the manifest with its cause.
* Every output is written atomically as soon as it exists, so Ctrl-C or
  ``--timeout`` keeps all finished work.

The executor depends on the small protocols of :mod:`runner.execute.services`, so
tests run it against ``FakeServices`` or a real aiohttp server on loopback, never
against patched internals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runner.api.types import Completion
from runner.errors import ApiError, ItemError, RunnerError, TemplateProblem
from runner.execute.ask import Asker, cacheable, record_completion, reply_text
from runner.execute.claims import Claims
from runner.execute.export import Exporter, write_export
from runner.execute.finish import (
    finish,
    light_processing,
    processed_or_failure,
    quotes_shortfall,
    unusable,
)
from runner.execute.loop_lag import LoopLag
from runner.execute.phases import Phases, step
from runner.execute.services import Reporter, Services
from runner.execute.transcribe import Obtained, Settled, Transcriber
from runner.items import Item, Shard, expand
from runner.prompt.payloads import Payload, build_payload, task_context
from runner.prompt.templating import TemplateEngine, used_transcript_fields
from runner.prompt.views import TaskResultView, TranscriptView
from runner.recipe.fallbacks import client_fallbacks
from runner.recipe.model import MANIFEST_FILE, TRANSCRIPT_FILE, Recipe, Task
from runner.recipe.prices import PriceTable
from runner.results.manifest import NOT_RUN, ItemRecord, ManifestWriter, TaskRecord
from runner.results.outputs import item_dir, write_transcript
from runner.results.table import Tables, row_of
from runner.serial_thread import SerialThread
from runner.store import Store
from runner.transcript.model import Transcript

log = logging.getLogger(__name__)

# Items under way at once: most of them only wait for their jobs, holding an id each
# (a few KB), so the pool can be large enough to keep any account's limits busy.
DEFAULT_ITEMS_IN_FLIGHT = 1000
# Items holding their transcript at once, while their tasks run: enough to keep the
# LLM slots full (each item has one to a few calls in flight), few enough that memory
# stays flat however many items wait. The command sizes it from the `llm` limit.
DEFAULT_ITEMS_WORKING = 32
START_BATCH = 32  # items started before the loop gets a turn


@dataclass(frozen=True)
class RunOptions:
    out: Path | None = None  # --out: DIR/<recipe>/<item> instead of the recipe's output.dir
    manifest: Path = Path("out") / MANIFEST_FILE
    timeout: float | None = None  # --timeout for the whole run, seconds
    transcript_deadline: float | None = None  # per transcript; None: the client's default
    items_in_flight: int = DEFAULT_ITEMS_IN_FLIGHT
    items_working: int = DEFAULT_ITEMS_WORKING  # of those, holding transcripts at once
    use_cache: bool = True  # --no-cache: ask the LLM again (the ledger is always used)
    offline: bool = False  # --offline: everything must come from the state store
    shard: Shard | None = None  # --shard K/N: only this job's share of the items
    # Why LLM tasks cannot run (a first run with no key and no local server): they are
    # recorded as not run, which fails nothing. None: they run.
    llm_unavailable: str | None = None
    # Each recipe's `prices:` and --prices; None: no costs are claimed.
    prices: Mapping[str, PriceTable] | None = None


@dataclass
class RunOutcome:
    manifest: Path
    outcome: str  # completed, interrupted, timed out
    wall_seconds: float
    writer: ManifestWriter
    not_started: int = 0
    tables: tuple[Path, ...] = ()  # output.table files written
    table_problem: str | None = None  # why a table could not be written

    @property
    def failed(self) -> bool:
        totals = self.writer.totals
        return bool(
            self.outcome != "completed"
            or totals.items["failed"]
            or totals.tasks["failed"]
            or totals.tasks["skipped"]
        )


@dataclass
class PreparedRecipe:
    """What one recipe needs at run time, computed once before the first item."""

    recipe: Recipe
    engine: TemplateEngine
    items: list[Item]
    tasks: tuple[Task, ...]
    needs_sentences: bool
    needs_paragraphs: bool
    needs_words: bool  # words, utterances or speakers: parsed (and checked) up front


def prepare_recipe(recipe: Recipe, shard: Shard | None = None) -> PreparedRecipe:
    """Expand the items (this shard's), order the tasks, and find which transcript
    parts the templates use, so no item fetches sentences nobody reads."""
    engine = TemplateEngine(recipe.base_dir)
    tasks = recipe.ordered_tasks()
    used = used_transcript_fields(engine, [t for task in tasks for t in task.templates])
    quotes = any(task.quotes is not None for task in tasks)
    exports = any(task.export is not None for task in tasks)
    items = expand(recipe, engine)
    return PreparedRecipe(
        recipe=recipe,
        engine=engine,
        items=shard.select(recipe, items) if shard else items,
        tasks=tasks,
        needs_sentences=quotes or bool(used & {"sentences", "*"}),
        needs_paragraphs=bool(used & {"paragraphs", "*"}),
        needs_words=exports or quotes or bool(used & {"words", "utterances", "speakers", "*"}),
    )


@dataclass
class _State:
    in_flight: dict[tuple[str, str], ItemRecord] = field(default_factory=dict)
    started: int = 0
    finished: int = 0
    # Items under way by phase: transcribing (uploading on the way, then waiting for
    # the job), ready (waiting for room to work), asking (writing on the way).
    phases: Phases = field(default_factory=Phases)


class Executor:
    """Runs recipes to completion, interruption or timeout, streaming the manifest."""

    def __init__(
        self,
        services: Services,
        options: RunOptions,
        reporter: Reporter,
        store: Store | None = None,
    ) -> None:
        self.options = options
        self.reporter = reporter
        # Runs sharing a state folder split the work: one claim per job and request.
        self.claims = Claims(store)
        self.transcriber = Transcriber(
            services.transcripts,
            store,
            offline=options.offline,
            deadline=options.transcript_deadline,
            claims=self.claims,
        )
        self.asker = Asker(
            services,
            store,
            use_cache=options.use_cache,
            offline=options.offline,
            claims=self.claims,
        )
        self.exporter = Exporter(services.transcripts, offline=options.offline)
        self._state = _State()
        self._working = asyncio.Semaphore(options.items_working)
        self._lag = LoopLag()
        # Output files are written on one thread of their own: off the event loop (a
        # slow disk stalls no request), without a hand-off to a pool per file.
        self._files = SerialThread("outputs")
        self._tables = Tables()
        self.outcome: RunOutcome | None = None  # set even when the run is interrupted

    @property
    def phases(self) -> Mapping[str, int]:
        """How many items under way are in each phase and step (what the progress
        display shows each second, before ``queued`` and ``done``)."""
        return self._state.phases.counts

    async def run(self, recipes: Sequence[Recipe]) -> RunOutcome:
        prepared = [prepare_recipe(r, self.options.shard) for r in recipes]
        work = [(recipe, item) for recipe in prepared for item in recipe.items]
        writer = ManifestWriter(
            self.options.manifest,
            {
                "recipes": [_recipe_entry(p.recipe) for p in prepared],
                "shard": f"{shard.index}/{shard.count}" if (shard := self.options.shard) else None,
            },
            self.options.prices,
        )
        began = time.monotonic()
        self.reporter.start(len(work))
        outcome = "completed"
        watching = asyncio.get_running_loop().create_task(self._lag.watch())
        ticking = asyncio.get_running_loop().create_task(self._tick(len(work)))
        try:
            async with asyncio.timeout(self.options.timeout), self.claims.alive():
                await self._run_pool(work, writer)
        except TimeoutError:
            outcome = "timed out"
        except asyncio.CancelledError:
            self.outcome = self._close(writer, "interrupted", began, len(work))
            raise
        except BaseExceptionGroup as group:
            # A run-wide stop (a refused key) cancels every item: close the manifest,
            # then report the cause once, however many items met it at the same time.
            stop = _run_stopper(group)
            if stop is None:
                raise
            self.outcome = self._close(writer, "stopped", began, len(work))
            raise stop from None
        finally:
            watching.cancel()
            ticking.cancel()
            self.reporter.stop()
            self._files.close()  # (a no-op when _close already did it)
        self.outcome = self._close(writer, outcome, began, len(work))
        return self.outcome

    async def _tick(self, total: int) -> None:
        """Tell the progress display, each second, where the items are."""
        while True:
            await asyncio.sleep(1.0)
            state = self._state
            self.reporter.tick(
                {**self.phases, "queued": total - state.started, "done": state.finished}
            )

    def _close(self, writer: ManifestWriter, outcome: str, began: float, total: int) -> RunOutcome:
        # Every output already queued is written before the manifest says what exists.
        # Synchronously: nothing can cancel it halfway, and the files' thread never
        # waits for the event loop, so blocking it here for the last writes is safe.
        self._files.close()
        tables = self._tables.close()
        for record in self._state.in_flight.values():
            record.status = "interrupted"
            record.error = record.error or f"the run was {outcome} before this item finished"
            writer.add(record)
        self._state.in_flight.clear()
        wall = time.monotonic() - began
        path = writer.close(outcome, wall, loop_lag=self._lag.max_seconds)
        return RunOutcome(
            path,
            outcome,
            wall,
            writer,
            not_started=total - self._state.started,
            tables=tuple(tables),
            table_problem=self._tables.problem,
        )

    async def _run_pool(
        self, work: list[tuple[PreparedRecipe, Item]], writer: ManifestWriter
    ) -> None:
        queue: asyncio.Queue[tuple[PreparedRecipe, Item]] = asyncio.Queue()
        for entry in work:
            queue.put_nowait(entry)

        async def worker() -> None:
            while True:
                try:
                    prepared, item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                record, results = await self._process_item(prepared, item)
                self._state.in_flight.pop((prepared.recipe.name, item.name), None)
                self._state.finished += 1
                # Into the manifest before anything else is awaited: a Ctrl-C during the
                # table's write must not lose a finished item from run.json.
                writer.add(record)
                self.reporter.item_finished(record)
                if prepared.recipe.table is not None:
                    row = row_of(record, results, prepared.recipe)
                    await self._files.call(
                        self._tables.add, prepared.recipe, self.options.manifest, row
                    )

        count = max(1, min(self.options.items_in_flight, len(work)))
        async with asyncio.TaskGroup() as group:
            for started in range(count):
                group.create_task(worker())
                if started % START_BATCH == START_BATCH - 1:
                    # Each new item runs until its first wait (its folder, its keys):
                    # a thousand at once would hold the loop for a tenth of a second.
                    await asyncio.sleep(0)

    # --- one item -------------------------------------------------------------------

    async def _process_item(
        self, prepared: PreparedRecipe, item: Item
    ) -> tuple[ItemRecord, dict[str, TaskResultView | None]]:
        """The item's record, and each task's result (for the results table)."""
        recipe = prepared.recipe
        record = ItemRecord(
            recipe=recipe.name,
            item=item.name,
            source=item.source,
            recipe_file=recipe.display,
            kind=item.kind.value,
            status="ok",
        )
        self._state.in_flight[(recipe.name, item.name)] = record
        self._state.started += 1
        self.reporter.item_started(recipe.name, item.name)
        results: dict[str, TaskResultView | None] = {}
        try:
            await self._transcribe_then_run_tasks(prepared, item, record, results)
        except ItemError as exc:
            # One item's trouble (an API error, a failed transcript, an unreadable file,
            # an unwritable folder, a store problem) is that item's failure; the others
            # go on. Each task catches its own, so this is what comes before the tasks.
            record.status = "failed"
            record.error = exc.message
        return record, results

    async def _transcribe_then_run_tasks(
        self,
        prepared: PreparedRecipe,
        item: Item,
        record: ItemRecord,
        results: dict[str, TaskResultView | None],
    ) -> None:
        folder = item_dir(prepared.recipe, item, prepared.engine, self.options.out)
        record.folder = str(folder)
        with self._state.phases.item("transcribing") as place:
            settled = await self.transcriber.settle(prepared.recipe, item, record)
            place.enter("ready")
            # Waiting items hold an id; only items with room to work hold a transcript.
            async with self._working:
                place.enter("asking")
                await self._work_on(prepared, item, folder, settled, record, results)

    async def _work_on(
        self,
        prepared: PreparedRecipe,
        item: Item,
        folder: Path,
        settled: Settled,
        record: ItemRecord,
        results: dict[str, TaskResultView | None],
    ) -> None:
        obtained = await self.transcriber.load(
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
        view = TranscriptView.build(transcript, obtained.sentences, obtained.paragraphs)
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
        results: dict[str, TaskResultView | None],
    ) -> None:
        """Run the item's tasks; each record joins ``item_record`` as soon as it exists,
        so an interrupted item still shows the tasks that finished, and each result
        joins ``results``."""
        done: dict[str, asyncio.Future[TaskResultView | None]] = {
            task.name: asyncio.get_running_loop().create_future() for task in prepared.tasks
        }
        records = item_record.tasks

        async def when_ready(task: Task) -> None:
            unavailable = self.options.llm_unavailable
            if task.asks_model and task.provider is None and unavailable is not None:
                # Nothing to ask (no key, no local server): said once, not a failure.
                records.append(
                    TaskRecord(
                        task=task.name,
                        line=task.line,
                        status=NOT_RUN,
                        error=unavailable,
                        api=task.api.value,
                        model_requested=task.requested_model,
                    )
                )
                done[task.name].set_result(None)
                return
            needed = [await done[n] for n in task.needs]
            if any(result is None for result in needed):
                failed = [n for n, r in zip(task.needs, needed, strict=True) if r is None]
                records.append(
                    TaskRecord(
                        task=task.name,
                        line=task.line,
                        status="skipped",
                        error=f"not run because {', '.join(failed)} failed",
                        api=task.api.value,
                        model_requested=task.requested_model,
                    )
                )
                done[task.name].set_result(None)
                return
            inputs = {n: r for n, r in zip(task.needs, needed, strict=True) if r is not None}
            if task.export is not None:
                record, result = await self._export(task, item, folder, obtained)
            else:
                record, result = await self._run_task(
                    prepared, item, task, folder, obtained.transcript, view, inputs
                )
            records.append(record)
            results[task.name] = result
            done[task.name].set_result(result)

        async with asyncio.TaskGroup() as group:
            for task in prepared.tasks:
                group.create_task(when_ready(task))
        order = {task.name: i for i, task in enumerate(prepared.tasks)}
        records.sort(key=lambda r: order[r.task])

    async def _run_task(
        self,
        prepared: PreparedRecipe,
        item: Item,
        task: Task,
        folder: Path,
        transcript: Transcript,
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
            task, payload, completion = await self._first_answer(candidates, label, record)
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
        if record.cached and not clean:
            # A reply kept as the run stopped, that does not process: not replayed again.
            await self.asker.forget(record.cache_key or "")
        if record.asked and clean and cacheable(completion):
            # Kept before any file is written, so a full disk loses no paid reply. Only
            # a reply that processed cleanly is kept: a broken or cut-off one must be
            # asked again on the next run, not replayed forever.
            await self.asker.remember(record.cache_key or "", label, payload, completion)
        try:
            with step("writing"):
                result = await self._files.call(finish, task, folder, view, reply, outcome, record)
        except ItemError as exc:  # an output that cannot be written (a folder in the way)
            return record.fail(exc.message), None
        return record, result

    async def _first_answer(
        self, candidates: Sequence[tuple[Task, Payload]], label: str, record: TaskRecord
    ) -> tuple[Task, Payload, Completion]:
        """The first model to answer: the task's, then each client-side fallback in
        order when a request fails (a refused AssemblyAI key still stops the run)."""
        retries = 0
        for index, (task, payload) in enumerate(candidates):
            try:
                completion = await self.asker.reply(task, payload, label, record)
                record.retries = retries
                return task, payload, completion
            except ApiError as exc:
                retries += exc.retries
                record.retries = retries
                if index + 1 == len(candidates):
                    raise
                following = candidates[index + 1][0].model
                log.info("%s: %s failed; trying %s", label, task.model, following)
                await self.asker.release(record.cache_key or "")
                record.cache_key = None
        raise AssertionError("a task has at least one model")  # pragma: no cover

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
        except ItemError as exc:
            if isinstance(exc, ApiError):
                record.retries = exc.retries
            return record.fail(exc.message), None
        try:
            with step("writing"):
                result = await self._files.call(
                    write_export, task, folder, obtained.transcript, fetched, item.name, record
                )
        except ItemError as exc:  # an output that cannot be written (a folder in the way)
            return record.fail(exc.message), None
        return record, result


def _run_stopper(group: BaseExceptionGroup) -> RunnerError | None:
    """The first user-facing error in ``group`` that is not one item's (see errors.py)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = _run_stopper(exc)
            if found is not None:
                return found
        elif isinstance(exc, RunnerError) and not isinstance(exc, ItemError):
            return exc
    return None


def _seconds(value: float | int | None) -> float | None:
    return float(value) if value is not None else None


def _recipe_entry(recipe: Recipe) -> dict[str, str]:
    """The recipe as the manifest lists it; with its ``table``, so ``merge`` finds the
    tables of a sharded run's shards."""
    entry = {"name": recipe.name, "file": recipe.display}
    if recipe.table is not None:
        entry["table"] = recipe.table
    return entry
