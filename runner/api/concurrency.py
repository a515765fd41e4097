"""How many requests of one family may be on the wire at once, found while the run goes.

A fixed number is right for one server and wrong for the next: 8 LLM calls at once
starve a server that answers 200 at once in 100 ms, and overload a local llama-server
with 2 slots whose queue then grows until calls time out. :class:`AdaptiveLimit`
finds the number the way TCP finds its window (AIMD, with slow start), with the
latency signal of Netflix's concurrency-limits (Gradient2: a queue at the server shows
as recent replies slower than the long-run average):

* **grow** while the limit is what holds requests back and replies keep their pace
  (the recent ones within ``TOLERANCE`` times the fastest of late): one more per reply
  in slow start (the limit doubles every round trip), then the square root of the
  limit more per round trip (Netflix's queue allowance);
* **halve** on a refusal (429, 503) or a timeout, and remember where that happened;
* **shrink by a tenth** when the recent replies take ``TOLERANCE`` times the long-run
  average (the server is queueing), or a quarter of the timeout: a limit that let
  replies near the timeout would soon see them time out, whatever the average;
* **stop doubling** as soon as a reply takes half as long again as the fastest of late
  (HyStart's rule): the queue is forming, and the replies that would say so are still
  in it.

Only growing is judged against the fastest replies; shrinking is judged against the
long-run average, which follows a slow client too: when this process is short of CPU
every reply is read late, and the limit stops growing but does not collapse for a
queue that is ours, not the server's. "Of late" is this period of ``PERIOD`` replies
and the one before, so the fastest can rise when the server itself becomes slower.
* **never above the ceiling**: an explicit ``--limit`` (or a recipe's ``limits:``),
  else the family's default ceiling.

A slot is taken by :meth:`acquire` and given back by :meth:`release` with what
happened, so the limit learns from every reply.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import Final

from runner.api.cooldowns import Clock

# The recent latency: about the last ten replies; the long-run one: the last hundred.
SHORT_WEIGHT: Final = 0.1
LONG_WEIGHT: Final = 0.01
# Recent replies this many times slower than the long run: the server is queueing.
TOLERANCE: Final = 2.0
SLOW_START_EXIT: Final = 1.5
# Replies taking this share of the timeout shrink the limit, whatever the average.
TIMEOUT_SHARE: Final = 0.25
PERIOD: Final = 500


class AdaptiveLimit:
    """A semaphore whose size follows the server: AIMD with slow start and a latency
    signal, between 1 and ``ceiling``."""

    def __init__(
        self,
        ceiling: int,
        start: int,
        *,
        clock: Clock = time.monotonic,
        adaptive: bool = True,
        timeout: float | None = None,
    ) -> None:
        """``timeout``: of one request; replies nearing it shrink the limit."""
        self.ceiling = max(1, ceiling)
        self.limit = float(min(self.ceiling, max(1, start)))
        self.adaptive = adaptive and self.ceiling > 1
        self.in_flight = 0
        self.peak = 0  # the most requests on the wire at once, for reports and tests
        self.highest = self.limit  # the highest the limit has been
        self._latency_cap = TIMEOUT_SHARE * timeout if timeout else float("inf")
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._threshold = float(self.ceiling)  # slow start ends here (TCP's ssthresh)
        self._short: float | None = None  # the recent replies' latency, averaged
        self._long: float | None = None  # the long-run average
        self._fastest = float("inf")  # the fastest reply of this period
        self._fastest_before = float("inf")  # and of the one before
        self._period_count = 0
        self._calm_after = 0.0  # no second decrease before this time
        self._full_at = float("-inf")  # the last time every allowed slot was taken

    def __repr__(self) -> str:
        return f"AdaptiveLimit(limit={self.limit:.1f}, ceiling={self.ceiling})"

    @property
    def allowed(self) -> int:
        """Requests allowed on the wire now."""
        return max(1, int(self.limit))

    def locked(self) -> bool:
        return self.in_flight >= self.allowed

    async def acquire(self) -> None:
        """Wait for a slot (first come, first served) and take it."""
        if not self._waiters and self.in_flight < self.allowed:
            self._take()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._give_back()  # handed a slot just as it was cancelled
            else:
                self._waiters.remove(waiter)
            raise

    def release(self, latency: float | None = None, *, overloaded: bool = False) -> None:
        """Give back a slot: ``latency`` of a reply that came, or ``overloaded`` (a
        refusal or a timeout); neither: a request that was not answered (not sent,
        stopped), which teaches nothing."""
        # The limit held requests back while this one was on the wire: growing it
        # would have let more through (TCP grows only a window it fills).
        saturated = latency is not None and self._full_at >= self._clock() - latency - 1e-9
        self._give_back()
        if not self.adaptive:
            return
        if overloaded:
            self._decrease(0.5)
        elif latency is not None:
            self._learn(latency, saturated)

    def _take(self) -> None:
        self.in_flight += 1
        if self.in_flight >= self.allowed:
            self._full_at = self._clock()
            self.peak = max(self.peak, self.in_flight)

    def _give_back(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.allowed:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)

    def _learn(self, latency: float, saturated: bool) -> None:
        short, long = self._short, self._long
        short = self._short = latency if short is None else short + SHORT_WEIGHT * (latency - short)
        long = self._long = latency if long is None else long + LONG_WEIGHT * (latency - long)
        fastest = self._track_fastest(latency)
        if short > TOLERANCE * long or short > self._latency_cap:
            self._decrease(0.9)
            return
        if latency > SLOW_START_EXIT * fastest and self.limit < self._threshold:
            self._threshold = self.limit
        if saturated and self.limit < self.ceiling and short <= TOLERANCE * fastest:
            if self.limit < self._threshold:
                step = 1.0
            else:
                step = max(1.0, math.sqrt(self.limit)) / self.limit
            self.limit = min(float(self.ceiling), self.limit + step)
            self.highest = max(self.highest, self.limit)
            self._wake()

    def _track_fastest(self, latency: float) -> float:
        """The fastest reply of this period and the one before."""
        self._fastest = min(self._fastest, latency)
        self._period_count += 1
        if self._period_count >= PERIOD:
            self._fastest_before, self._fastest = self._fastest, float("inf")
            self._period_count = 0
        return min(self._fastest, self._fastest_before)

    def _decrease(self, factor: float) -> None:
        """Shrink the limit, once per round trip: the replies of requests sent before
        the decrease say nothing about the new limit."""
        now = self._clock()
        if now < self._calm_after:
            return
        self.limit = max(1.0, self.limit * factor)
        self._threshold = self.limit
        self._short = None  # judge the new limit by its own replies
        self._calm_after = now + (self._long or 0.0)
