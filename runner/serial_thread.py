"""One thread for one kind of blocking work: calls in order, woken in batches.

A 10,000-item run makes about twenty store calls and four file writes per item. Sent
to the default thread pool, each paid for a hand-off to one of six threads (which
then fought the event loop for the interpreter), and each woke the event loop on its
own; the store's calls also queued behind its lock, each committed on its own. Here
one thread takes the calls from a queue as they come, and the event loop is woken
once per batch of calls that waited together.

For the state store (``runner.store``) a batch runs in one transaction
(:meth:`Store.batch`, a savepoint each, so a failed call undoes only itself): one
commit for many. For output files (the executor's writer) there is no batching
context: each call stands alone.

A call returns only after its batch ran (and, for the store, committed, with SQLite's
``synchronous=FULL``): a reply or a job recorded through :meth:`SerialThread.call` is
on disk before the caller goes on, and the event loop never waits for the store's
lock. A batch is what was already waiting when the thread woke: it never waits for
more calls to come, so grouping saves syncs without delaying any commit. :meth:`SerialThread.close`
finishes every call already queued, so a run that stops keeps what it was recording.
Closing is for good (a second close does nothing): a call after it is a bug of its
caller, a :class:`RuntimeError` at once, never a call queued where no thread will
take it. A call and a close that race are one before the other: the call is queued
before the close's stop (and runs), or it sees the close (and raises).
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
    """A batch context around calls that wait together (the store's transaction)."""

    def batch(self) -> AbstractContextManager[None]: ...
    def unit(self) -> AbstractContextManager[None]: ...
    @property
    def in_transaction(self) -> bool: ...


class BatchLost(Exception):
    """SQLite rolled back a batch's whole transaction (a full disk, an I/O error)."""


class SerialThread:
    """Runs calls on one thread; :meth:`call` awaits one of them."""

    def __init__(self, name: str, batching: Batching | None = None) -> None:
        self.name = name
        self.batching = batching
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # Held while a call is queued (starting the thread if need be) and while close
        # stops it, so no call can be queued behind the stop, where nothing takes it.
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0
        self.calls = 0

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on this thread; it returns once the call's batch ran (with
        batching, once it committed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue_call(_Call(function, args, loop, future))
        return await future

    def close(self) -> None:
        """Finish the calls already queued, then stop the thread, for good; a second
        close does nothing."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._closed = True
            if thread is not None:
                self._queue.put(None)  # after every call queued so far
        if thread is not None:
            thread.join()

    def _queue_call(self, call: _Call) -> None:
        """Queue ``call``, starting the thread if none runs; a RuntimeError once closed."""
        with self._lock:
            if self._closed:
                name = getattr(call.function, "__name__", repr(call.function))
                raise RuntimeError(
                    f"the {self.name} thread is closed: {name} was called after close()"
                )
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name=f"transcript-runner-{self.name}", daemon=True
                )
                self._thread.start()
            self._queue.put(call)

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
                outcomes = [(False, RuntimeError(f"the {self.name} thread failed: {exc!r}"))]
                outcomes *= len(batch)
            self._settle(batch, outcomes)
            if stopping:
                return

    def _run(self, batch: list[_Call]) -> list[tuple[bool, Any]]:
        """Each call's (ok, result or exception); with batching, all committed together."""
        if self.batching is None:
            outcomes = [_outcome(call) for call in batch]
        else:
            outcomes = self._run_batched(batch, self.batching)
        self.batches += 1
        self.calls += len(batch)
        return outcomes

    @staticmethod
    def _run_batched(batch: list[_Call], store: Batching) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with store.batch():
                for call in batch:
                    try:
                        with store.unit():
                            outcomes.append((True, call.function(*call.args)))
                    except Exception as exc:  # that call's own failure: the others stand
                        if not store.in_transaction:
                            # SQLite undid the whole batch: no call of it stands, and
                            # the ones after it must not run outside the batch.
                            raise BatchLost() from exc
                        outcomes.append((False, exc))
        except BatchLost as lost:  # the cause is the failed call's own error
            cause = lost.__cause__ or lost
            return [(False, cause)] * len(batch)
        except Exception as exc:  # the batch did not commit: no call of it happened
            return [(False, exc)] * len(batch)
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


def _outcome(call: _Call) -> tuple[bool, Any]:
    try:
        return True, call.function(*call.args)
    except Exception as exc:  # the caller's to handle, as with any await
        return False, exc
    except BaseException as exc:  # never the other calls' failure too
        return False, RuntimeError(f"{call.function.__name__} failed: {exc!r}")


def _resolve(settled: list[tuple[_Call, tuple[bool, Any]]]) -> None:
    for call, (ok, value) in settled:
        if call.future.done():  # the caller was cancelled meanwhile
            continue
        if ok:
            call.future.set_result(value)
        else:
            call.future.set_exception(value)
