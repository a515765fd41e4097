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


def test_each_share_starts_with_whole_modules_of_slow_tests_and_every_test_is_kept_once() -> None:
    slow = [["A0", "A1", "A2"], ["B0"], ["C0", "C1"]]
    quick = [f"q{n}" for n in range(9)]
    ordered = slow_first_in_every_share(slow, quick, 3)
    assert sorted(ordered) == sorted(["A0", "A1", "A2", "B0", "C0", "C1", *quick])
    first, second, third = ordered[:5], ordered[5:10], ordered[10:]  # 15 dealt 5, 5, 5
    assert first == ["A0", "A1", "A2", "q0", "q1"]  # the largest module first, whole
    assert second == ["C0", "C1", "q2", "q3", "q4"]
    assert third == ["B0", "q5", "q6", "q7", "q8"]


def test_a_module_goes_to_the_share_with_the_fewest_slow_tests_so_far() -> None:
    slow = [["A0", "A1"], ["B0", "B1"], ["C0"], ["D0"]]
    ordered = slow_first_in_every_share(slow, ["q0", "q1"], 2)  # 8 dealt 4, 4
    assert ordered[:4] == ["A0", "A1", "C0", "q0"]  # C to the first: a tie goes to it
    assert ordered[4:] == ["B0", "B1", "D0", "q1"]  # D to the one with fewer


def test_one_worker_or_none_keeps_the_slow_tests_first() -> None:
    assert slow_first_in_every_share([["S"]], ["a", "b"], 1) == ["S", "a", "b"]
    assert slow_first_in_every_share([["S"]], ["a", "b"], 0) == ["S", "a", "b"]


def test_more_slow_tests_than_a_share_holds_are_all_kept() -> None:
    ordered = slow_first_in_every_share([["S0", "S1", "S2"], ["S3"]], ["q"], 2)
    assert sorted(ordered) == ["S0", "S1", "S2", "S3", "q"]
    assert ordered[:3] == ["S0", "S1", "S2"]
