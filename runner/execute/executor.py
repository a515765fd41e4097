"""The async scheduler: it decides when each item does what, and nothing more.

* Items flow in two stages. Up to ``items_in_flight`` wait for their transcripts,
  holding only a job id; up to ``items_working`` of them hold a transcript and run their
  tasks. So the account's limits stay busy and memory stays flat for 10,000-item
  runs: a finished job's body is fetched only when its item has room. The HTTP
  layer (:mod:`runner.api.http`) bounds uploads, submissions, polls and LLM
  calls separately, with retries and rate limits.
* What an item does in each stage is :class:`~runner.execute.item_work.ItemWork`'s
  (its transcript, then its tasks in the order of the task graph); where each finished
  item is written, the :class:`~runner.results.recorder.Recorder`'s.
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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import ItemError, RunnerError
from runner.execute.claims import Claims
from runner.execute.group_work import Finished, GroupWork
from runner.execute.item_work import ItemWork, Results
from runner.execute.loop_lag import LoopLag
from runner.execute.options import RunOptions
from runner.execute.phases import Phases
from runner.execute.prepared import PreparedRecipe, prepare_recipe
from runner.execute.services import ProgressDisplay, Services
from runner.items import Item
from runner.recipe.model import Recipe
from runner.results.recorder import Recorder, RunOutcome
from runner.serial_thread import SerialThread
from runner.store import Store

START_BATCH = 32  # items started before the loop gets a turn


@dataclass
class _State:
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
        progress: ProgressDisplay,
        store: Store | None = None,
    ) -> None:
        self.options = options
        self.progress = progress
        # Runs sharing a state folder split the work: one claim per job and request.
        self.claims = Claims(store)
        # Output files are written on one thread of their own: off the event loop (a
        # slow disk stalls no request), without a hand-off to a pool per file.
        self._files = SerialThread("outputs")
        self.work = ItemWork(services, store, options, self.claims, self._files)
        self.groups = GroupWork(
            self.work.tasks, store, self._files, options.out, options.llm_unavailable
        )
        # Of recipes with group tasks only: each finished item's folder and results.
        self._finished: dict[str, dict[str, Finished]] = {}
        self._state = _State()
        self._working = asyncio.Semaphore(options.items_working)
        self._lag = LoopLag()
        self.outcome: RunOutcome | None = None  # set even when the run is interrupted

    @property
    def phases(self) -> Mapping[str, int]:
        """How many items under way are in each phase and step (what the progress
        display shows each second, before ``queued`` and ``done``)."""
        return self._state.phases.counts

    async def run(self, recipes: Sequence[Recipe]) -> RunOutcome:
        only = self.options.only_items or {}
        prepared = [prepare_recipe(r, self.options.shard, only.get(r.name)) for r in recipes]
        work = [(recipe, item) for recipe in prepared for item in recipe.items]
        groups = sum(len(found) for p in prepared for found in p.groups.values())
        recorder = Recorder(
            self.options.manifest,
            [p.recipe for p in prepared],
            self.progress,
            self._files,
            shard=self.options.shard,
            prices=self.options.prices,
        )
        began = time.monotonic()
        total = len(work) + groups
        self.progress.start(total)
        outcome = "completed"
        watching = asyncio.get_running_loop().create_task(self._lag.watch())
        ticking = asyncio.get_running_loop().create_task(self._tick(total))
        try:
            async with asyncio.timeout(self.options.timeout), self.claims.alive():
                await self._run_pool(work, recorder)
                for recipe in prepared:  # once every item is done: the groups
                    await self._run_groups(recipe, recorder)
        except TimeoutError:
            outcome = "timed out"
        except asyncio.CancelledError:
            self.outcome = self._close(recorder, "interrupted", began, total)
            raise
        except BaseExceptionGroup as group:
            # A run-wide stop (a refused key) cancels every item: close the manifest,
            # then report the cause once, however many items met it at the same time.
            stop = _run_stopper(group)
            if stop is None:
                raise
            self.outcome = self._close(recorder, "stopped", began, total)
            raise stop from None
        finally:
            watching.cancel()
            ticking.cancel()
            self.progress.stop()
            self._files.close()  # (a no-op when _close already did it)
        self.outcome = self._close(recorder, outcome, began, total)
        return self.outcome

    async def _run_groups(self, prepared: PreparedRecipe, recorder: Recorder) -> None:
        """The recipe's group tasks, each group once, reading its items back from disk."""
        if not prepared.group_tasks:
            return
        count = sum(len(found) for found in prepared.groups.values())
        self._state.started += count
        with self._state.phases.item("asking"):
            await self.groups.run(prepared, self._finished.pop(prepared.recipe.name, {}), recorder)
        self._state.finished += count

    async def _tick(self, total: int) -> None:
        """Tell the progress display, each second, where the items are."""
        while True:
            await asyncio.sleep(1.0)
            state = self._state
            self.progress.tick(
                {**self.phases, "queued": total - state.started, "done": state.finished}
            )

    def _close(self, recorder: Recorder, outcome: str, began: float, total: int) -> RunOutcome:
        # Every output already queued is written before the manifest says what exists.
        # Synchronously: nothing can cancel it halfway, and the files' thread never
        # waits for the event loop, so blocking it here for the last writes is safe.
        self._files.close()
        return recorder.close(
            outcome,
            time.monotonic() - began,
            loop_lag=self._lag.max_seconds,
            not_started=total - self._state.started,
        )

    async def _run_pool(self, work: list[tuple[PreparedRecipe, Item]], recorder: Recorder) -> None:
        queue: asyncio.Queue[tuple[PreparedRecipe, Item]] = asyncio.Queue()
        for entry in work:
            queue.put_nowait(entry)

        async def worker() -> None:
            while True:
                try:
                    prepared, item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self._run_item(prepared, item, recorder)

        count = max(1, min(self.options.items_in_flight, len(work)))
        async with asyncio.TaskGroup() as group:
            for started in range(count):
                group.create_task(worker())
                if started % START_BATCH == START_BATCH - 1:
                    # Each new item runs until its first wait (its folder, its keys):
                    # a thousand at once would hold the loop for a tenth of a second.
                    await asyncio.sleep(0)

    async def _run_item(self, prepared: PreparedRecipe, item: Item, recorder: Recorder) -> None:
        """One item, from its start to its record: its transcript first; then, once
        it has room to work, its tasks."""
        record = recorder.started(prepared.recipe, item)
        self._state.started += 1
        results: Results = {}
        try:
            with self._state.phases.item("transcribing") as place:
                folder, settled, besides = await self.work.settle(prepared, item, record)
                place.enter("ready")
                # Waiting items hold an id; only items with room to work hold a transcript.
                async with self._working:
                    place.enter("asking")
                    await self.work.work_on(
                        prepared, item, folder, settled, record, results, besides
                    )
        except ItemError as exc:
            # One item's trouble (an API error, a failed transcript, an unreadable file,
            # an unwritable folder, a store problem) is that item's failure; the others
            # go on. Each task catches its own, so this is what comes before the tasks.
            record.status = "failed"
            record.error = exc.message
        if prepared.group_tasks:  # what its groups will read back: a folder and names
            self._finished.setdefault(prepared.recipe.name, {})[item.name] = Finished(
                Path(record.folder) if record.folder else None,
                frozenset(name for name, result in results.items() if result is not None),
            )
        self._state.finished += 1
        await recorder.finished(prepared.recipe, record, results)


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
