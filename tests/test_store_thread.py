"""One thread for the state store: calls in order, many in one commit, none lost.

Why: a 10,000-item run makes about twenty store calls per item; each committed on its
own from six threads queued behind one lock. The thread batches them, and a paid
reply or a job it records must still be on disk before the caller goes on.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from runner.errors import StoreError
from runner.serial_thread import SerialThread
from runner.store import Store


async def test_calls_waiting_together_share_a_commit_and_each_returns_its_result(
    tmp_path: Path,
) -> None:
    with Store(tmp_path) as store:
        await asyncio.gather(
            *(store.call(store.intent_put, f"k{n}", "a", "u", {}) for n in range(50))
        )
        found = await asyncio.gather(*(store.call(store.intent_get, f"k{n}") for n in range(50)))
        assert [intent.key for intent in found if intent] == [f"k{n}" for n in range(50)]
        thread = store._thread
        assert thread.calls == 100
        assert thread.batches < 100  # calls that waited together shared a commit
    # Committed: another connection sees them once the first is closed.
    with Store(tmp_path) as again:
        assert again.intent_get("k49") is not None


async def test_one_failed_call_undoes_only_itself(tmp_path: Path) -> None:
    def broken() -> None:
        store.intent_put("half", "a", "u", {})  # written, then undone with its call
        raise sqlite3.OperationalError("disk I/O error")

    with Store(tmp_path) as store:
        results = await asyncio.gather(
            store.call(store.intent_put, "before", "a", "u", {}),
            store.call(broken),
            store.call(store.intent_put, "after", "a", "u", {}),
            return_exceptions=True,
        )
        assert isinstance(results[1], StoreError)  # said with the store's path and remedy
        assert "disk I/O error" in str(results[1])
        assert store.intent_get("before") is not None
        assert store.intent_get("after") is not None
        assert store.intent_get("half") is None


async def test_closing_finishes_every_queued_call(tmp_path: Path) -> None:
    # A run that stops keeps what it was recording: the ledger write of a submission
    # queued just before the stop is on disk after close.
    store = Store(tmp_path)
    release = threading.Event()

    def slow() -> None:
        release.wait(5)

    first = asyncio.ensure_future(store.call(slow))
    queued = asyncio.ensure_future(store.call(store.ledger_put, "key", "a", {}, "t-1", "submitted"))
    await asyncio.sleep(0.05)
    release.set()
    store.close()  # without awaiting the callers: the thread drains its queue first
    first.cancel()
    queued.cancel()
    with Store(tmp_path) as again:
        entry = again.ledger_get("key")
        assert entry is not None
        assert entry.transcript_id == "t-1"


class _CloseWhilePutting(queue.SimpleQueue[Any]):
    """A queue whose first call is put only after ``close()`` was given its chance to
    run on another thread: the interleaving of a call racing a close, forced. Without a
    lock around both, close stops the thread first and the call waits forever."""

    def __init__(self, serial: SerialThread) -> None:
        super().__init__()
        self.serial = serial
        self.armed = False
        self.closer: threading.Thread | None = None
        self.closed = threading.Event()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if self.armed and item is not None and self.closer is None:
            self.closer = threading.Thread(target=self._close)
            self.closer.start()
            self.closed.wait(0.5)  # a close that can, finishes first; one that waits, waits
        super().put(item, block, timeout)

    def _close(self) -> None:
        self.serial.close()
        self.closed.set()


async def test_a_call_racing_close_runs_or_is_refused_never_left_waiting() -> None:
    serial = SerialThread("race")
    racing = _CloseWhilePutting(serial)
    serial._queue = racing  # before the thread starts: it takes its calls from this one
    assert await serial.call(lambda: "started") == "started"  # the thread runs
    racing.armed = True
    # Bounded: before the fix the call waited forever behind close's stop.
    assert await asyncio.wait_for(serial.call(lambda: "ran"), 5) == "ran"
    assert racing.closer is not None
    racing.closer.join(5)
    assert racing.closed.is_set()
    with pytest.raises(RuntimeError, match=r"the race thread is closed: .* after close"):
        await serial.call(lambda: "too late")
    serial.close()  # again: nothing to do (the executor closes its files twice)


async def test_the_store_refuses_a_call_after_close(tmp_path: Path) -> None:
    store = Store(tmp_path)
    await store.call(store.intent_put, "k", "a", "u", {})
    store.close()
    with pytest.raises(RuntimeError, match="the store thread is closed: intent_get was"):
        await asyncio.wait_for(store.call(store.intent_get, "k"), 5)
    store.close()
