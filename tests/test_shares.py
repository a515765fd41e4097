"""The order that starts every xdist worker on its share of the slow tests (tests/shares.py)."""

from __future__ import annotations

import pytest
from shares import share_sizes, slow_first_in_every_share


@pytest.mark.parametrize(
    ("count", "workers", "sizes"),
    [(10, 3, [3, 3, 4]), (9, 3, [3, 3, 3]), (5, 2, [2, 3]), (2, 3, [0, 1, 1]), (7, 1, [7])],
)
def test_shares_are_dealt_as_worksteal_deals_them(
    count: int, workers: int, sizes: list[int]
) -> None:
    assert share_sizes(count, workers) == sizes
    assert sum(sizes) == count


def test_each_share_starts_with_its_slow_tests_and_every_test_is_kept_once() -> None:
    slow = ["S0", "S1", "S2", "S3", "S4"]
    quick = [f"q{n}" for n in range(10)]
    ordered = slow_first_in_every_share(slow, quick, 3)
    assert sorted(ordered) == sorted(slow + quick)
    first, second, third = ordered[:5], ordered[5:10], ordered[10:]  # 15 dealt 5, 5, 5
    assert first == ["S0", "S3", "q0", "q1", "q2"]
    assert second == ["S1", "S4", "q3", "q4", "q5"]
    assert third == ["S2", "q6", "q7", "q8", "q9"]


def test_one_worker_or_none_keeps_the_slow_tests_first() -> None:
    assert slow_first_in_every_share(["S"], ["a", "b"], 1) == ["S", "a", "b"]
    assert slow_first_in_every_share(["S"], ["a", "b"], 0) == ["S", "a", "b"]


def test_more_slow_tests_than_a_share_holds_are_all_kept() -> None:
    ordered = slow_first_in_every_share(["S0", "S1", "S2", "S3"], ["q"], 2)
    assert sorted(ordered) == ["S0", "S1", "S2", "S3", "q"]
    assert ordered[:2] == ["S0", "S2"]
