"""Single flight: items of one run that need the same work wait for the first to do it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from runner.errors import RunnerError

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Items of one run that need the same work wait for the first to do it.

    The result is shared with every item that waited for it; a failed attempt is not:
    each waiting item then tries on its own, as if there had been no other. Nothing is
    kept once the work is done (memory stays flat over 10,000 items): an item that
    comes later finds the result where it was recorded, in the ledger or the cache.
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[T]] = {}

    async def join(self, key: str) -> T | None:
        """The result of the same work done or under way, or None: do it yourself."""
        running = self._running.get(key)
        if running is None:
            return None
        try:
            return await asyncio.shield(running)
        except RunnerError:
            return None

    async def run(self, key: str, work: Callable[[], Awaitable[T]], *, keep: bool = False) -> T:
        """Do ``work`` for ``key``; items that :meth:`join` meanwhile share its result.

        ``keep`` holds the result for later joiners until :meth:`forget` (until it is
        recorded somewhere they can find it); otherwise it goes when the work is done.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            result = await work()
        except BaseException as exc:
            if self._running.get(key) is future:
                del self._running[key]
            future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            future.exception()  # retrieved: waiting items handle the failure themselves
            raise
        if not keep and self._running.get(key) is future:
            del self._running[key]
        future.set_result(result)
        return result

    def forget(self, key: str) -> None:
        """The result of ``key`` is recorded elsewhere now: let it go."""
        self._running.pop(key, None)
