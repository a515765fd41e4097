"""How many cores this process may use: its affinity, and its cgroup's CPU quota.

A container can be given 2 cores' worth of time on a 32-core host: its affinity still
lists 32 cores, and 33 workers would share 2 cores' time (each collecting the suite,
each holding its memory). Linux tells the quota in ``cpu.max`` (cgroup v2: ``QUOTA
PERIOD`` or ``max PERIOD``) or in ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us``
(cgroup v1, a quota of -1 for none).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def usable_cores(cgroup: Path = CGROUP) -> int:
    """The cores in this process's affinity, no more than its cgroup's quota allows."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    quota = cgroup_quota(cgroup)
    return max(1, min(cores, math.ceil(quota))) if quota is not None else cores


def cgroup_quota(cgroup: Path = CGROUP) -> float | None:
    """Cores' worth of CPU time the cgroup may use, or None when there is no quota (or
    no cgroup file to read: another system, or a layout this does not know)."""
    v2 = _read(cgroup / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        return _ratio(quota, period)
    return _ratio(
        _read(cgroup / "cpu" / "cpu.cfs_quota_us"), _read(cgroup / "cpu" / "cpu.cfs_period_us")
    )


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
