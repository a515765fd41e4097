"""``-n auto`` counts the cores a container may use, not the host's (tests/cores.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cores import cgroup_quota, usable_cores


def _affinity() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@pytest.mark.parametrize(
    ("cpu_max", "quota"),
    [("200000 100000", 2.0), ("150000 100000", 1.5), ("max 100000", None), ("garbage", None)],
)
def test_a_cgroup_v2_quota_is_read_in_cores(
    tmp_path: Path, cpu_max: str, quota: float | None
) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max + "\n", encoding="ascii")
    assert cgroup_quota(tmp_path) == quota


def test_a_cgroup_v1_quota_is_read_and_minus_one_is_none(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n", encoding="ascii")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n", encoding="ascii")
    assert cgroup_quota(tmp_path) == 1.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n", encoding="ascii")
    assert cgroup_quota(tmp_path) is None


def test_a_quota_below_the_affinity_caps_the_cores_rounded_up(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("50000 100000\n", encoding="ascii")  # half a core
    assert usable_cores(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{100000 * _affinity() * 4} 100000\n", encoding="ascii")
    assert usable_cores(tmp_path) == _affinity()  # a quota above the affinity: the affinity


def test_no_cgroup_files_leave_the_affinity(tmp_path: Path) -> None:
    assert cgroup_quota(tmp_path) is None
    assert usable_cores(tmp_path) == _affinity()
