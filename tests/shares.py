"""The order of the collected tests, so that each xdist worker starts on its share of
the ``slow`` ones.

xdist's ``worksteal`` hands the collection out in contiguous shares, one per worker
(the first ``n // workers`` tests to one, the next to another), and an idle worker
later takes the second half of the longest queue that is left. With every slow test
at the front of the list, as this suite had them, the first share held all of them:
one worker ran seconds-long tests one after another for the whole run and finished
alone, five seconds after the others, while a core waited. So each share begins with
every ``workers``-th slow test and goes on with the quick ones; what is stolen from
the end of a queue is then quick tests, and a slow one never starts last.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def share_sizes(count: int, workers: int) -> list[int]:
    """How many of ``count`` tests each worker gets first, as worksteal deals them:
    each in turn the pending tests divided by the workers still to serve."""
    sizes: list[int] = []
    for turn in range(workers):
        sizes.append((count - sum(sizes)) // (workers - turn))
    return sizes


def slow_first_in_every_share(slow: Sequence[T], quick: Sequence[T], workers: int) -> list[T]:
    """``slow`` and ``quick`` in one order: every share that worksteal deals to one of
    ``workers`` starts with its round-robin part of ``slow`` (in their own order), the
    rest of it quick tests in theirs. Every test is kept, once."""
    if workers <= 1:
        return [*slow, *quick]
    remaining = iter(quick)
    ordered: list[T] = []
    for turn, size in enumerate(share_sizes(len(slow) + len(quick), workers)):
        head = list(slow[turn::workers])
        ordered += head + list(islice(remaining, max(0, size - len(head))))
    return ordered + list(remaining)
