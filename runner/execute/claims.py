"""Runs sharing a state folder split the work instead of paying for it twice.

Before it submits a recording or asks an LLM, a run claims the work's key in the state
store. A second run that finds a live claim does not send its own request: it waits
for the first run's job (in the ledger) or reply (in the cache) and uses it.

Whether the holder lives is never judged by comparing two machines' clocks (two CI
runners 120 s apart took over each other's live claims and paid twice):

- on the same machine (the same boot, the same pid namespace), by its process: alive
  while a process with its pid and its start time exists, so a run killed with
  ``kill -9`` is known dead at once, and a pid reused since is not mistaken for it;
- elsewhere, by its beat counter: a live run increments it every ``HEARTBEAT`` seconds,
  and a waiting run takes the claim over only once it has seen the counter stand still
  for ``EXPIRY`` seconds of its *own* monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

from runner.api.pacing import paced
from runner.errors import StoreError
from runner.store import Holder, Store

T = TypeVar("T")
U = TypeVar("U")

EXPIRY = 60.0  # seconds a counter stands still, seen from here, before a takeover
HEARTBEAT = 15.0  # seconds between beats
LOOK_AGAIN = 1.0  # seconds between looks for the other run's result

_PROC = Path("/proc")


class Claims:
    """This run's claims in one store (none without a store: nothing to share)."""

    def __init__(self, store: Store | None, *, expiry: float = EXPIRY) -> None:
        self.store = store
        self.me = this_run(f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}")
        self.owner = self.me.owner
        self.expiry = expiry
        # Each other holder's counter as last seen, and when (time.monotonic()) it was
        # first seen at that value. Touched only on the store's thread (in claim()).
        self._seen: dict[str, tuple[float, float]] = {}

    async def result_of_others(self, key: str, look: Callable[[], T | None]) -> T | None:
        """What another live run produced for ``key`` (``look``, a synchronous store
        method that never calls :meth:`Store.call`, finds it), waiting for it while
        that run works; None once this run holds the claim and must do the work."""
        found, _ = await self.result_or_claim(key, look, None)
        return found

    async def result_or_claim(
        self, key: str, look: Callable[[], T | None], then: Callable[[], U] | None
    ) -> tuple[T | None, U | None]:
        """As :meth:`result_of_others`; once this run holds the claim, ``then()`` (a
        synchronous store method too) runs in the claim's own transaction, and its
        result comes back beside None: what the claimed work reads first, without one
        more trip to the store's thread."""
        store = self.store
        if store is None:
            return None, None
        while True:
            holder, found, after = await store.call(
                self._claim_unless_found, store, key, look, then
            )
            if holder is None:
                return found, after
            await asyncio.sleep(paced(LOOK_AGAIN) or 0.01)

    def _claim_unless_found(
        self,
        store: Store,
        key: str,
        look: Callable[[], T | None],
        then: Callable[[], U] | None,
    ) -> tuple[Holder | None, T | None, U | None]:
        """On the store's thread, in one transaction (the write lock held throughout, so
        no other run commits in between): the result if there is one, else the claim
        (and ``then()``). ``(holder, None, None)`` while another live run holds it."""
        found = look()
        if found is not None:
            return None, found, None
        holder = store.claim(key, self.me, self.is_dead)
        if holder is None and then is not None:
            return None, None, then()
        return holder, None, None

    def is_dead(self, holder: Holder) -> bool:
        """Whether ``holder`` is gone: by its process on this machine, else by its counter
        standing still for ``expiry`` seconds of this run's monotonic clock."""
        if same_machine(holder, self.me):
            return not process_alive(holder)
        now = time.monotonic()
        seen = self._seen.get(holder.owner)
        if seen is None or seen[0] != holder.beats:
            self._seen[holder.owner] = (holder.beats, now)
            return False
        return now - seen[1] >= self.expiry

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
            with contextlib.suppress(Exception):  # best effort: a dead run's claims are taken
                await self.store.call(self.store.release_claims, self.owner)

    async def _beat(self, store: Store) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            # One busy moment of the store must not stop the heartbeat: another run would
            # then take over live claims and pay again. The next beat tries again.
            with contextlib.suppress(StoreError):
                await store.call(store.keep_claims, self.owner)


def this_run(owner: str) -> Holder:
    """This process as a holder of claims."""
    pid = os.getpid()
    return Holder(
        owner=owner,
        host=socket.gethostname(),
        boot_id=_read(_PROC / "sys" / "kernel" / "random" / "boot_id"),
        pid_namespace=_pid_namespace(),
        pid=pid,
        process_start=process_start(pid),
        started=time.time(),
        beats=0,
    )


def same_machine(holder: Holder, me: Holder) -> bool:
    """Whether ``holder``'s pid means a process ``me`` can look at: the same boot of the
    same machine, in the same pid namespace (two containers share a boot, not pids)."""
    return bool(me.boot_id) and (holder.boot_id, holder.pid_namespace) == (
        me.boot_id,
        me.pid_namespace,
    )


def process_alive(holder: Holder) -> bool:
    """Whether ``holder``'s process (on this machine) still runs: its pid exists and
    started when it did, so a pid the system gave to another process since is dead."""
    started = process_start(holder.pid)
    if not started:
        return False
    return not holder.process_start or started == holder.process_start


def live_holders(store: Store) -> dict[str, Holder]:
    """The claimed keys whose holder may still live, as one look can tell: on this
    machine, its process runs; elsewhere it cannot be told without watching its counter,
    so it is taken as alive (keeping paid work is the safe side)."""
    me = this_run("")
    return {
        key: holder
        for key, holder in store.claim_holders().items()
        if not same_machine(holder, me) or process_alive(holder)
    }


def process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``); "" when no
    such process exists or it cannot be told."""
    stat = _read(_PROC / str(pid) / "stat")
    # The command name (field 2) may hold spaces and parentheses: count after the last ")".
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def _pid_namespace() -> str:
    try:
        return os.readlink(_PROC / "self" / "ns" / "pid")
    except OSError:
        return ""


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
