"""Where the items under way are, counted for the progress display.

An item goes queued → transcribing → waiting for a slot → asking → done. Two steps
happen inside those phases and take real time of their own: uploading a local file
(while transcribing) and writing output files (while asking). The code doing them is
deep in the transcriber and the task runner, which know nothing of items' phases, so
the item's place travels in a context variable: set once in the item's own task, it is
seen by every task that item starts (asyncio copies the context into each), and
:func:`step` reads it there. Code running outside an item (``plan``, tests) finds
none, and :func:`step` does nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class ItemPhase:
    """One item's place: a phase, and for a while a step inside it.

    Steps nest and overlap (two tasks of one item writing at once): the item shows the
    step until the last of them ends, then its phase again. Each item counts once.
    """

    __slots__ = ("_counts", "_phase", "_shown", "_steps")

    def __init__(self, counts: Counter[str]) -> None:
        self._counts = counts
        self._phase: str | None = None
        self._shown: str | None = None
        self._steps = 0

    def enter(self, phase: str) -> None:
        """Move to ``phase`` (a step under way goes on showing until it ends)."""
        self._phase = phase
        if not self._steps:
            self._show(phase)

    def leave(self) -> None:
        """The item is done (or failed, or was interrupted): it counts nowhere."""
        self._phase = None
        self._steps = 0
        self._show(None)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._steps += 1
        self._show(name)
        try:
            yield
        finally:
            # (leave() may have ended the item meanwhile: an interrupted write.)
            if self._steps:
                self._steps -= 1
                if not self._steps:
                    self._show(self._phase)

    def _show(self, where: str | None) -> None:
        if self._shown is not None:
            self._counts[self._shown] -= 1
        if where is not None:
            self._counts[where] += 1
        self._shown = where


class Phases:
    """How many items are in each phase and step, for the progress display."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    @contextmanager
    def item(self, phase: str) -> Iterator[ItemPhase]:
        """A new item's place, starting in ``phase``: current for the item's task and
        every task it starts, until the block ends and the item counts nowhere."""
        place = ItemPhase(self.counts)
        place.enter(phase)
        token = _current.set(place)
        try:
            yield place
        finally:
            place.leave()
            _current.reset(token)


_current: ContextVar[ItemPhase | None] = ContextVar("transcript_runner_item", default=None)


@contextmanager
def step(name: str) -> Iterator[None]:
    """Count the current item in ``name`` (``uploading``, ``writing``) while the block
    runs; outside an item, nothing."""
    place = _current.get()
    if place is None:
        yield
        return
    with place.step(name):
        yield
