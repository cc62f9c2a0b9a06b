"""How many cores this server may use: its CPU affinity, capped by a cgroup CPU quota.

`os.cpu_count()` counts the host's cores. In a container limited to 2 CPUs on a 64-core host
that would start 64 inference threads (or processes) competing for 2 cores' worth of time, which
the kernel then throttles. The affinity mask (`taskset`, `cpuset`, Kubernetes' static CPU
manager) and the CFS quota (`docker run --cpus`, Kubernetes CPU limits) both bound it; a
fractional quota rounds up, as the JVM and Go's runtime do.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["available_cpus", "cgroup_cpu_limit"]

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_PROC_CGROUP = Path("/proc/self/cgroup")


def available_cpus(cgroup_root: Path = _CGROUP_ROOT, proc_cgroup: Path = _PROC_CGROUP) -> int:
    """Cores this process may run on: affinity, capped by the cgroup quota; at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity call on macOS and Windows
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(cgroup_root, proc_cgroup)
    if limit is not None:
        cores = min(cores, math.ceil(limit))
    return max(1, cores)


def cgroup_cpu_limit(
    cgroup_root: Path = _CGROUP_ROOT, proc_cgroup: Path = _PROC_CGROUP
) -> float | None:
    """The CPU quota of this process's cgroup in cores (v2 `cpu.max`, else v1 CFS), or None."""
    paths = _cgroup_paths(proc_cgroup)
    v2 = paths.get("", "/")
    for folder in _candidates(cgroup_root, v2):
        limit = _read_v2(folder / "cpu.max")
        if limit is not None:
            return limit
    v1 = paths.get("cpu", "/")
    for base in (cgroup_root / "cpu", cgroup_root / "cpu,cpuacct"):
        for folder in _candidates(base, v1):
            limit = _read_v1(folder)
            if limit is not None:
                return limit
    return None


def _cgroup_paths(proc_cgroup: Path) -> dict[str, str]:
    """Controller -> cgroup path from /proc/self/cgroup ("" is the v2 unified hierarchy)."""
    try:
        text = proc_cgroup.read_text()
    except OSError:
        return {}
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                paths[controller] = parts[2]
    return paths


def _candidates(base: Path, path: str) -> list[Path]:
    # Inside a container's cgroup namespace its own cgroup is the mount's root; outside one the
    # process's cgroup sits below it.
    nested = base / path.lstrip("/")
    return [nested, base] if nested != base else [base]


def _read_v2(file: Path) -> float | None:
    try:
        quota, period = file.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return _cores(quota, period)


def _read_v1(folder: Path) -> float | None:
    try:
        quota = (folder / "cpu.cfs_quota_us").read_text().strip()
        period = (folder / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    return _cores(quota, period)


def _cores(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None  # v1 says -1 for no quota
