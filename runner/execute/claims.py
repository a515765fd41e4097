"""Runs sharing a state folder split the work instead of paying for it twice.

Before it submits a recording or asks an LLM, a run claims the work's key in the state
store. A second run that finds a live claim does not send its own request: it waits
for the first run's job (in the ledger) or reply (in the cache) and uses it. A claim
lives while its run's heartbeat does; a run that died (``kill -9``) stops beating, its
claims expire after ``EXPIRY`` seconds, and whoever waits takes the work over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from runner.api.pacing import paced
from runner.errors import StoreError
from runner.store import Store

T = TypeVar("T")

EXPIRY = 60.0  # seconds without a heartbeat before a claim is taken over
HEARTBEAT = 15.0  # seconds between heartbeats
LOOK_AGAIN = 1.0  # seconds between looks for the other run's result


class Claims:
    """This run's claims in one store (none without a store: nothing to share)."""

    def __init__(self, store: Store | None) -> None:
        self.store = store
        # host:pid:random: a run on this machine whose process is gone (kill -9) is
        # known dead at once; one elsewhere is dead when its heartbeat stops.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"

    async def result_of_others(self, key: str, look: Callable[[], T | None]) -> T | None:
        """What another live run produced for ``key`` (``look``, a synchronous store
        method that never calls :meth:`Store.call`, finds it), waiting for it while
        that run works; None once this run holds the claim and must do the work."""
        store = self.store
        if store is None:
            return None
        while True:
            holder, found = await store.call(self._claim_unless_found, store, key, look)
            if holder is None:
                return found
            await asyncio.sleep(paced(LOOK_AGAIN) or 0.01)

    def _claim_unless_found(
        self, store: Store, key: str, look: Callable[[], T | None]
    ) -> tuple[str | None, T | None]:
        """On the store's thread, in one transaction (the write lock held throughout, so
        no other run commits in between): the result if there is one, else the claim.
        ``(holder, None)`` while another live run holds the claim."""
        found = look()
        if found is not None:
            return None, found
        return store.claim(key, self.owner, EXPIRY, _is_dead), None

    @contextlib.asynccontextmanager
    async def working_on(self, key: str) -> AsyncIterator[None]:
        """Around doing the work for ``key``: the claim is let go at the end, whatever
        happened, so a waiting run looks again (and takes over if nothing was kept)."""
        try:
            yield
        finally:
            if self.store is not None:
                with contextlib.suppress(Exception):
                    await self.store.call(self.store.release_claims, self.owner, key)

    @contextlib.asynccontextmanager
    async def alive(self) -> AsyncIterator[None]:
        """Beat while the run works; release every claim when it ends, however."""
        if self.store is None:
            yield
            return
        beating = asyncio.create_task(self._beat(self.store))
        try:
            yield
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await beating
            with contextlib.suppress(Exception):  # best effort: claims expire anyway
                await self.store.call(self.store.release_claims, self.owner)

    async def _beat(self, store: Store) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            # One busy moment of the store must not stop the heartbeat: another run would
            # then take over live claims and pay again. The next beat tries again.
            with contextlib.suppress(StoreError):
                await store.call(store.keep_claims, self.owner)


def _is_dead(holder: str) -> bool:
    """Whether a claim's holder is a process of this machine that no longer exists."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, as another user's process
        return False
    return False
