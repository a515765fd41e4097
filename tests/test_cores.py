"""``-n auto`` counts the cores a container may use, not the host's (tests/cores.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cores import cgroup_quota, usable_cores


def _affinity() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _member_of(tmp_path: Path, lines: str) -> Path:
    """A /proc/self/cgroup of the test's own."""
    membership = tmp_path / "proc-self-cgroup"
    membership.write_text(lines, encoding="ascii")
    return membership


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="ascii")


@pytest.mark.parametrize(
    ("cpu_max", "quota"),
    [("200000 100000", 2.0), ("150000 100000", 1.5), ("max 100000", None), ("garbage", None)],
)
def test_a_cgroup_v2_quota_is_read_in_cores(
    tmp_path: Path, cpu_max: str, quota: float | None
) -> None:
    _write(tmp_path / "fs" / "cpu.max", cpu_max)
    assert cgroup_quota(tmp_path / "fs", _member_of(tmp_path, "0::/\n")) == quota


def test_the_process_own_cgroup_and_those_above_it_are_read_the_smallest_binding(
    tmp_path: Path,
) -> None:
    """Outside a cgroup namespace of its own (a systemd slice, ``--cgroupns=host``) the
    quota is in the process's cgroup folder, or a parent's, not at the mount's root."""
    fs = tmp_path / "fs"
    membership = _member_of(tmp_path, "0::/ci.slice/job-7.scope\n")
    _write(fs / "ci.slice" / "job-7.scope" / "cpu.max", "max 100000")
    _write(fs / "ci.slice" / "cpu.max", "300000 100000")
    assert cgroup_quota(fs, membership) == 3.0
    _write(fs / "ci.slice" / "job-7.scope" / "cpu.max", "100000 100000")
    assert cgroup_quota(fs, membership) == 1.0
    assert usable_cores(fs, membership) == 1


def test_a_cgroup_v1_quota_is_read_and_minus_one_is_none(tmp_path: Path) -> None:
    fs = tmp_path / "fs"
    membership = _member_of(tmp_path, "9:name=systemd:/\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    _write(fs / "cpu" / "docker" / "abc" / "cpu.cfs_period_us", "100000")
    _write(fs / "cpu" / "docker" / "abc" / "cpu.cfs_quota_us", "100000")
    assert cgroup_quota(fs, membership) == 1.0
    _write(fs / "cpu" / "docker" / "abc" / "cpu.cfs_quota_us", "-1")
    assert cgroup_quota(fs, membership) is None


def test_a_quota_below_the_affinity_caps_the_cores_rounded_up(tmp_path: Path) -> None:
    fs, membership = tmp_path / "fs", _member_of(tmp_path, "0::/\n")
    _write(fs / "cpu.max", "50000 100000")  # half a core
    assert usable_cores(fs, membership) == 1
    _write(fs / "cpu.max", f"{100000 * _affinity() * 4} 100000")
    assert usable_cores(fs, membership) == _affinity()  # above the affinity: the affinity


def test_no_cgroup_files_leave_the_affinity(tmp_path: Path) -> None:
    membership = tmp_path / "no-proc-self-cgroup"
    assert cgroup_quota(tmp_path / "fs", membership) is None
    assert usable_cores(tmp_path / "fs", membership) == _affinity()
