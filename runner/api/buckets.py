"""Pacing under a server's rate limit: requests spread evenly, so the window never fills.

AssemblyAI's LLM Gateway allows each model a number of requests per window (paid
accounts: 30 a minute, notes §8) and says so on every answer: ``x-ratelimit-limit``
(requests per window), ``x-ratelimit-remaining`` and ``x-ratelimit-reset`` (seconds
until the window resets). Waiting for ``remaining`` to reach 0 and then pausing (what
:mod:`runner.api.cooldowns` does) still lets a burst in flight overrun the window; so
as soon as a gate's headers are seen, its requests go through a bucket that lets one
request out every ``window / limit`` seconds, a little slower than the limit
(``HEADROOM``), whatever the number of coroutines wanting to send.

The bucket is GCRA's "theoretical arrival time" with no burst: each request reserves
the next free instant, at least one interval after the previous reservation, and
sleeps until it. In any window of the server's, fixed or sliding, that is at most
``ceil(HEADROOM × limit)`` requests, which is within the limit; so while a gate is
paced, ``x-ratelimit-remaining: 0`` needs no pause (a negative one, or a 429, still
does: someone else is using the account's limit too).

A gate's first request goes alone: the others wait for its answer (for at most
``first_wait`` seconds), whose headers size the bucket before they leave. A server that
sends no such headers is not paced at all.

The window's length is the largest ``x-ratelimit-reset`` seen (the first answer of a
window says the whole of it), or the documented 60 s when the headers carry none. A
recipe's ``limits: {llm_per_minute: N}`` (or ``{MODEL: N}``) is a ceiling on the rate
before and after any header (the key ``None``: every model).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from runner.api.cooldowns import Clock, GateKey, Sleep
from runner.api.replies import header_number

# A little under the limit: a request that leaves on time can still arrive a few
# milliseconds late, or early, beside its neighbour; 1.5 % of the rate buys that margin.
HEADROOM: Final = 0.985
DOCUMENTED_WINDOW: Final = 60.0  # seconds (notes §8: "per model, 60 s window")


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` requests per ``window`` seconds."""

    limit: int
    window: float

    @property
    def per_minute(self) -> float:
        return self.limit * 60.0 / self.window

    @property
    def interval(self) -> float:
        """Seconds between two requests paced under this rate."""
        return self.window / (self.limit * HEADROOM)

    def as_json(self) -> dict[str, float]:
        return {"limit": self.limit, "window_seconds": self.window}


def header_rate(headers: Mapping[str, str], window: float | None) -> Rate | None:
    """The rate ``x-ratelimit-limit`` and ``x-ratelimit-reset`` describe, with the
    window the longest of ``window`` (seen before) and this reset; None without a limit."""
    limit = header_number(headers, "x-ratelimit-limit")
    if limit is None or limit < 1:
        return None
    reset = header_number(headers, "x-ratelimit-reset")
    if reset is not None and reset > 1e9:  # a Unix time, not seconds: say nothing of the window
        reset = None
    seen = max(window or 0.0, reset or 0.0)
    return Rate(int(limit), seen if seen > 0 else DOCUMENTED_WINDOW)


def _slower(first: Rate | None, second: Rate | None) -> Rate | None:
    """The slower of two rates (None: no limit)."""
    if first is None or second is None:
        return first or second
    return first if first.interval > second.interval else second


class Buckets:
    """One pacing bucket per gate (a Gateway model, or AssemblyAI's ``/v2``)."""

    def __init__(
        self,
        clock: Clock,
        sleep: Sleep,
        ceilings: Mapping[str | None, Rate] | None = None,
        known: Mapping[GateKey, Rate] | None = None,
    ) -> None:
        """``ceilings``: the recipe's rates for the LLM family's gates, by model (the
        key None: every model). ``known``: what an earlier run's headers said, so the
        first answers of a window already begun do not make it look shorter."""
        self._clock = clock
        self._sleep = sleep
        self._ceilings = dict(ceilings or {})
        self._learned: dict[GateKey, Rate] = dict(known or {})  # what the headers said
        self._rates: dict[GateKey, Rate | None] = {}  # what is applied (None: unpaced)
        self._next: dict[GateKey, float] = {}
        self._first: dict[GateKey, asyncio.Event] = {}  # set once the gate was answered

    def _ceiling(self, key: GateKey) -> Rate | None:
        family, model = key
        if family != "llm":
            return None
        # The model's own, and every model's: the slower holds (recipes together).
        return _slower(self._ceilings.get(model), self._ceilings.get(None))

    def _applied(self, key: GateKey) -> Rate | None:
        try:
            return self._rates[key]
        except KeyError:
            rate = self._rates[key] = _slower(self._ceiling(key), self._learned.get(key))
            return rate

    def answered(self, key: GateKey) -> None:
        """The gate's first request is over (answered or failed): the others may go."""
        first = self._first.setdefault(key, asyncio.Event())
        first.set()

    def observe(self, key: GateKey, headers: Mapping[str, str]) -> None:
        """Size the gate's bucket from an answer's rate-limit headers (if it has any)."""
        self.answered(key)
        if "x-ratelimit-limit" not in headers:
            return
        seen = self._learned.get(key)
        rate = header_rate(headers, seen.window if seen else None)
        if rate is None or rate == seen:
            return
        self._learned[key] = rate
        self._rates[key] = _slower(self._ceiling(key), rate)

    def defer(self, key: GateKey, until: float) -> None:
        """No reservation of the gate's before ``until`` (a pause the server asked for)."""
        if self._applied(key) is not None and self._next.get(key, 0.0) < until:
            self._next[key] = until

    def paced(self, key: GateKey) -> bool:
        return self._applied(key) is not None

    async def wait(self, key: GateKey, first_wait: float = 2.0) -> None:
        """Reserve the gate's next instant and sleep until it (at once when unpaced);
        a gate's first request goes alone."""
        first = self._first.get(key)
        if first is None:
            self._first[key] = asyncio.Event()  # this one is the first: it goes
        elif not first.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(first.wait(), first_wait)
        rate = self._applied(key)
        if rate is None:
            return
        now = self._clock()
        at = max(now, self._next.get(key, 0.0))
        self._next[key] = at + rate.interval
        if at > now:
            await self._sleep(at - now)

    def rate(self, key: GateKey) -> Rate | None:
        """The rate applied to a gate, if it is paced."""
        return self._applied(key)

    def learned(self) -> dict[str, Rate]:
        """Rates the headers said, as ``"family:model"`` (or ``"v2"``) → rate."""
        return {
            f"{family}:{model}" if model else family: rate
            for (family, model), rate in self._learned.items()
        }
