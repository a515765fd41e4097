"""Status sweeps: which of many waiting jobs finished, from one list request.

Polling each job on its own costs a request per job per poll: 200 jobs polled every
3 s spend the account's whole budget of 20,000 requests per 5 minutes (notes §6), and
a slower cadence notices completion late. The account's transcript list
(``GET /v2/transcript``, newest first, 200 per page, notes §4) carries every job's
status, so one sweep a second learns about hundreds of jobs at once, and each job's
body is fetched once, when it is done.

* Sweeps start when ``SWEEP_FROM`` jobs wait at once; for fewer, each job's own poll
  schedule (:func:`runner.api.transcripts.poll_delays`) costs less.
* One sweep every ``SWEEP_INTERVAL`` (0.5 s), slower when sweeps read many pages, so
  they never take more than ``SWEEP_BUDGET_SHARE`` (10 %) of the account's budget.
* A sweep walks pages from the newest until it has seen every waiting job: at most
  as many pages as the waiting jobs fill, plus one (5 at least, 51 at most). A job
  the last sweep did not see (a straggler behind thousands of newer jobs) is still
  checked on its own, every ``FALLBACK_SECONDS`` or so; one it saw is not.
* When too few jobs are left to sweep for, the jobs parked on sweeps go back to
  their own schedule at once.
* A sweep that fails (after the HTTP layer's retries; a page that cannot be read,
  :mod:`runner.api.listing`, is such a failure) wakes every waiting job to check on its
  own, so a broken list endpoint costs time, never a result. A refused key ends every
  wait with that error. A sweep broken by anything else says so in one warning line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from runner.api.listing import LIST_PAGE, Page
from runner.api.pacing import paced
from runner.errors import ApiError, KeyRefused

log = logging.getLogger(__name__)

SWEEP_FROM: Final = 4  # jobs waiting at once before a sweep costs less than their polls
SWEEP_INTERVAL: Final = 0.5  # seconds between sweeps at least: completion is noticed in ~1 s
MIN_PAGES: Final = 5  # pages of 200 a sweep may read at least: 1,000 jobs
MAX_PAGES: Final = 51  # and at most, whatever waits: 10,000 jobs and one page to spare
# AssemblyAI allows 20,000 requests per 5 minutes per account (notes §6). Sweeps take
# at most this share of it: 10 % is 6.7 pages a second, so a sweep of 5 pages waits
# 0.75 s before the next one, and a sweep of one page 0.5 s.
ACCOUNT_BUDGET: Final = 20_000
BUDGET_WINDOW: Final = 300.0  # seconds
ACCOUNT_BUDGET_PER_SECOND: Final = ACCOUNT_BUDGET / BUDGET_WINDOW
SWEEP_BUDGET_SHARE: Final = 0.10
FALLBACK_SECONDS: Final = 60.0  # a job the sweeps cover is still checked on its own
WAKE_BATCH: Final = 32  # finished jobs woken before the event loop gets a turn
_TERMINAL: Final = frozenset({"completed", "error"})

# Reads a page of the list, checked (:func:`runner.api.listing.read_page`): the newest
# for None, else the URL of an older one as the previous page gave it.
PageReader = Callable[[str | None], Awaitable[Page]]


@dataclass(frozen=True, slots=True)
class Sighting:
    """What a sweep saw of one job: ``completed`` or ``error`` (with the job's error), or
    ``status=None`` when the sweep failed and the job should be checked on its own."""

    status: str | None
    error: str | None = None


class StatusSweeper:
    """Watches waiting jobs through the account's transcript list.

    :meth:`watch` gives a future that a sweep resolves when the job is done. The sweeps
    run in one background task while jobs wait, and stop when none does.
    """

    def __init__(self, read_page: PageReader, *, interval: float = SWEEP_INTERVAL) -> None:
        self._read_page = read_page
        self._interval = interval
        self._last_pages = 0
        self._waiting: dict[str, asyncio.Future[Sighting]] = {}
        self._task: asyncio.Task[None] | None = None
        self.requests = 0  # list pages read, for the summary's share of the budget
        self._recent: deque[float] = deque()  # when each page of the last window was read
        self._seen: set[str] = set()  # waiting jobs the last sweep saw still running
        self.peak_window_requests = 0  # the most pages read in any BUDGET_WINDOW

    @property
    def covering(self) -> bool:
        """Whether sweeps are watching the jobs (enough of them wait at once)."""
        return len(self._waiting) >= SWEEP_FROM

    def watch(self, transcript_id: str) -> asyncio.Future[Sighting]:
        """A future a sweep resolves once ``transcript_id`` is done; :meth:`unwatch` it."""
        future = self._waiting.get(transcript_id)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._waiting[transcript_id] = future
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return future

    def unwatch(self, transcript_id: str) -> None:
        self._waiting.pop(transcript_id, None)
        self._seen.discard(transcript_id)

    def saw_lately(self, transcript_id: str) -> bool:
        """Whether the last sweep saw this job still running: its own check can wait."""
        return transcript_id in self._seen

    async def close(self) -> None:
        """Stop sweeping (a client being closed)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        swept = False
        while self._waiting:
            if self.covering:
                await self._sweep_or_hand_back()
                swept = True
            elif swept:
                # Too few jobs left to sweep for: the ones parked on sweeps go back to
                # their own schedule now, not at their next fallback check.
                swept = False
                self._seen.clear()
                self._resolve_all(Sighting(None))
            # Never a busy loop, even in test mode (where paced() is 0).
            await asyncio.sleep(max(paced(self.pause()), 0.01))

    def pause(self) -> float:
        """Seconds before the next sweep: the interval, or longer when the last sweep
        read so many pages that sweeping faster would spend more than
        ``SWEEP_BUDGET_SHARE`` of the account's request budget."""
        budget = ACCOUNT_BUDGET_PER_SECOND * SWEEP_BUDGET_SHARE
        return max(self._interval, self._last_pages / budget)

    async def _sweep_or_hand_back(self) -> None:
        try:
            await self.sweep()
        except KeyRefused as exc:
            self._seen.clear()
            self._resolve_all(exc)
        except ApiError as exc:
            # The jobs are fine, only the list failed: each checks on its own now.
            log.debug("status sweep failed: %s", exc.message)
            self._seen.clear()
            self._resolve_all(Sighting(None))
        except Exception as exc:  # whatever else broke, no job is left waiting on a dead sweep
            # One line: the jobs go on without sweeps, and a traceback would say nothing
            # a user can act on (a bug shows in the tests, which fail on warnings).
            log.warning("status sweep broke (%s); jobs are checked one by one", _named(exc))
            self._seen.clear()
            self._resolve_all(Sighting(None))

    async def sweep(self) -> None:
        """One sweep: read pages from the newest until every waiting job was seen."""
        unseen = set(self._waiting)
        limit = pages_for(len(unseen))  # fixed before the walk: found jobs do not shrink it
        url: str | None = None  # the newest page first
        pages = resolved = 0
        running: set[str] = set()
        while unseen and pages < limit:
            page = await self._read_page(url)
            pages += 1
            self._count_request()
            for job in page.jobs:
                if job.id not in unseen:
                    continue
                unseen.discard(job.id)
                if job.status not in _TERMINAL:
                    running.add(job.id)
                else:
                    self._resolve(job.id, Sighting(job.status, job.error))
                    resolved += 1
                    if resolved % WAKE_BATCH == 0:
                        # Each job woken runs its next step at once: hundreds in one
                        # turn of the loop would hold it (and every request) for 0.1 s.
                        await asyncio.sleep(0)
            url = page.older
            if url is None:  # the oldest page: the whole list was read
                break
        self._last_pages = pages
        self._seen = running

    def _count_request(self) -> None:
        now = time.monotonic()
        self.requests += 1
        self._recent.append(now)
        while self._recent and self._recent[0] < now - BUDGET_WINDOW:
            self._recent.popleft()
        self.peak_window_requests = max(self.peak_window_requests, len(self._recent))

    @property
    def peak_budget_share(self) -> float:
        """The largest share of the account's budget that sweeps spent in any window."""
        return self.peak_window_requests / ACCOUNT_BUDGET

    def _resolve(self, transcript_id: str, sighting: Sighting) -> None:
        future = self._waiting.pop(transcript_id, None)
        if future is not None and not future.done():
            future.set_result(sighting)

    def _resolve_all(self, outcome: Sighting | BaseException) -> None:
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
                future.exception()  # each waiter raises it; none is left unretrieved
            else:
                future.set_result(outcome)


def pages_for(waiting: int) -> int:
    """How many pages a sweep may read for ``waiting`` jobs: enough to reach them all
    if they are the newest in the account, and one more for jobs made by others."""
    return min(MAX_PAGES, max(MIN_PAGES, -(-waiting // LIST_PAGE) + 1))


def _named(exc: BaseException) -> str:
    """``TypeError: a bug``: the exception's class and message, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
