"""One thread for the state store: calls in order, many in one commit, none lost.

Why: a 10,000-item run makes about twenty store calls per item; each committed on its
own from six threads queued behind one lock. The thread batches them, and a paid
reply or a job it records must still be on disk before the caller goes on.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from runner.errors import StoreError
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
