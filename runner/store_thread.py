"""One thread for a run's state store: calls in order, and one commit for many.

A 10,000-item run makes about twenty store calls per item (claims, cached replies,
kept transcripts). Sent to the default thread pool, they queued behind the store's
lock from six threads, each committed on its own, and each woke the event loop on
its own. Here one thread takes the calls from a queue as they come; those waiting
together run in one transaction (:meth:`Store.batch`, a savepoint each, so a failed
call undoes only itself), and the event loop is woken once per batch.

A call returns only after its batch committed: a reply recorded through
:meth:`StoreThread.call` is on disk before the caller goes on, as before. The calls
that must not wait behind a queue (the ledger's record of a submission, written the
moment AssemblyAI accepts it) still call the :class:`Store` directly, synchronously.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

T = TypeVar("T")

MAX_BATCH: Final = 64  # calls per commit at most, so one batch never holds the lock long


@dataclass(frozen=True, slots=True)
class _Call:
    function: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class Batching(Protocol):
    """What the thread needs of :class:`runner.store.Store`."""

    def batch(self) -> AbstractContextManager[None]: ...
    def unit(self) -> AbstractContextManager[None]: ...
    @property
    def in_transaction(self) -> bool: ...


class BatchLost(Exception):
    """SQLite rolled back a batch's whole transaction (a full disk, an I/O error)."""


class StoreThread:
    """Runs a store's calls on one thread; :meth:`call` awaits one of them."""

    def __init__(self, store: Batching) -> None:
        self.store = store
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.calls = 0

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on the store's thread, committed before it returns."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._start()
        self._queue.put(_Call(function, args, loop, future))
        return await future

    def close(self) -> None:
        """Finish the calls already queued, then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="transcript-runner-store", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < MAX_BATCH:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    stopping = True
                    break
                batch.append(following)
            try:
                outcomes = self._run(batch)
            except BaseException as exc:  # never leave a caller waiting on a dead thread
                outcomes = [(False, RuntimeError(f"the state store's thread failed: {exc!r}"))]
                outcomes *= len(batch)
            self._settle(batch, outcomes)
            if stopping:
                return

    def _run(self, batch: list[_Call]) -> list[tuple[bool, Any]]:
        """Each call's (ok, result or exception), all committed together."""
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self.store.batch():
                for call in batch:
                    try:
                        with self.store.unit():
                            outcomes.append((True, call.function(*call.args)))
                    except Exception as exc:  # that call's own failure: the others stand
                        if not self.store.in_transaction:
                            # SQLite undid the whole batch: no call of it stands, and
                            # the ones after it must not run outside the batch.
                            raise BatchLost() from exc
                        outcomes.append((False, exc))
        except BatchLost as lost:  # the cause is the failed call's own error
            cause = lost.__cause__ or lost
            return [(False, cause)] * len(batch)
        except Exception as exc:  # the batch did not commit: no call of it happened
            return [(False, exc)] * len(batch)
        self.batches += 1
        self.calls += len(batch)
        return outcomes

    @staticmethod
    def _settle(batch: list[_Call], outcomes: list[tuple[bool, Any]]) -> None:
        """Hand each result to its caller's event loop, waking each loop once."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Call, tuple[bool, Any]]]] = {}
        for call, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(call.loop, []).append((call, outcome))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop closed: nobody waits
                loop.call_soon_threadsafe(_resolve, settled)


def _resolve(settled: list[tuple[_Call, tuple[bool, Any]]]) -> None:
    for call, (ok, value) in settled:
        if call.future.done():  # the caller was cancelled meanwhile
            continue
        if ok:
            call.future.set_result(value)
        else:
            call.future.set_exception(value)
