"""The order of the collected tests, so that each xdist worker starts on its share of
the ``slow`` ones.

xdist's ``worksteal`` hands the collection out in contiguous shares, one per worker
(the first ``n // workers`` tests to one, the next to another), and an idle worker
later takes the second half of the longest queue that is left. With every slow test
at the front of the list, as this suite had them, the first share held all of them:
one worker ran seconds-long tests one after another for the whole run and finished
alone, five seconds after the others, while a core waited. So each share begins with
its part of the slow tests and goes on with the quick ones; what is stolen from the
end of a queue is then mostly quick tests, and a slow one seldom starts last. The slow tests
are dealt a module at a time (the largest first, each to the share with the fewest so
far): a module's fixtures (a model loaded, vectors computed once) then serve all of
its tests in one worker, as they did when one worker ran them all.
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


def slow_first_in_every_share(
    slow: Sequence[Sequence[T]], quick: Sequence[T], workers: int
) -> list[T]:
    """The tests in one order: ``slow`` (their modules' groups) and ``quick``, so that
    every share worksteal deals to one of ``workers`` starts with whole groups of slow
    tests, each group in its own order, then quick tests in theirs (a share smaller
    than its groups, as under ``-m slow``, is all slow tests and its groups run on into
    the next). Every test is kept, once."""
    if workers <= 1:
        return [test for group in slow for test in group] + list(quick)
    heads: list[list[T]] = [[] for _ in range(workers)]
    for group in sorted(slow, key=len, reverse=True):  # stable: equal sizes keep their order
        min(heads, key=len).extend(group)
    count = sum(len(head) for head in heads) + len(quick)
    remaining = iter(quick)
    ordered: list[T] = []
    for head, size in zip(heads, share_sizes(count, workers), strict=True):
        ordered += head + list(islice(remaining, max(0, size - len(head))))
    return ordered + list(remaining)
