"""How many cores this process may use: its affinity, and its cgroup's CPU quota.

A container can be given 2 cores' worth of time on a 32-core host: its affinity still
lists 32 cores, and 33 workers would share 2 cores' time (each collecting the suite,
each holding its memory). Linux tells the quota in ``cpu.max`` (cgroup v2: ``QUOTA
PERIOD`` or ``max PERIOD``) or in ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us``
(cgroup v1, a quota of -1 for none), in the folder of the process's own cgroup (named
in ``/proc/self/cgroup``) and of each cgroup above it, the smallest binding. In a
container with a cgroup namespace of its own, that folder is the mount's root.
"""

from __future__ import annotations

import math
import os
from pathlib import Path, PurePosixPath

CGROUP = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def usable_cores(cgroup: Path = CGROUP, membership: Path = PROC_CGROUP) -> int:
    """The cores in this process's affinity, no more than its cgroup's quota allows."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    quota = cgroup_quota(cgroup, membership)
    return max(1, min(cores, math.ceil(quota))) if quota is not None else cores


def cgroup_quota(cgroup: Path = CGROUP, membership: Path = PROC_CGROUP) -> float | None:
    """Cores' worth of CPU time this process's cgroup (or one above it) may use, or None
    when there is no quota, or no cgroup file to read (another system, or a layout this
    does not know)."""
    v2, v1 = _own_cgroups(_read(membership) or "")
    quotas = [_v2_quota(folder) for folder in _up_from(cgroup, v2)]
    if not any(q is not None for q in quotas):  # no cpu.max anywhere: cgroup v1
        quotas = [_v1_quota(folder) for folder in _up_from(cgroup / "cpu", v1)]
    found = [quota for quota in quotas if quota is not None]
    return min(found) if found else None


def _own_cgroups(membership: str) -> tuple[str, str]:
    """The process's cgroup v2 path (``0::/PATH``) and its v1 ``cpu`` one
    (``N:cpu,cpuacct:/PATH``); ``/`` when not listed."""
    v2 = v1 = "/"
    for line in membership.splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and not controllers:
            v2 = path or "/"
        elif "cpu" in controllers.split(","):
            v1 = path or "/"
    return v2, v1


def _up_from(root: Path, path: str) -> list[Path]:
    """The folder of cgroup ``path`` under ``root``, then each above it up to ``root``."""
    parts = [part for part in PurePosixPath(path).parts if part not in ("/", "..", ".")]
    return [root.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _v2_quota(folder: Path) -> float | None:
    quota, _, period = (_read(folder / "cpu.max") or "").partition(" ")
    return _ratio(quota, period)


def _v1_quota(folder: Path) -> float | None:
    return _ratio(_read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us"))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _ratio(quota: str | None, period: str | None) -> float | None:
    try:
        over, per = int(quota or ""), int(period or "")
    except ValueError:  # "max", or nothing read
        return None
    return over / per if over > 0 and per > 0 else None
