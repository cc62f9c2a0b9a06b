"""The cores and memory this server may use.

Cores: the CPU affinity, capped by a cgroup CPU quota. `os.cpu_count()` counts the host's
cores: in a container limited to 2 CPUs on a 64-core host that would start 64 inference threads
(or processes) competing for 2 cores' worth of time, which the kernel then throttles. The
affinity mask (`taskset`, `cpuset`, Kubernetes' static CPU manager) and the CFS quota (`docker
run --cpus`, Kubernetes CPU limits) both bound it; a fractional quota rounds up, as the JVM and
Go's runtime do.

Memory: what the machine has available now, capped by the cgroup's memory limit (v2
`memory.max`, v1 `memory.limit_in_bytes`) less what the cgroup already uses, so that a container
limited to 2 GiB on a 64 GiB host is not sized as the host.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["available_cpus", "available_memory", "cgroup_cpu_limit", "cgroup_memory_limit"]

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_PROC_CGROUP = Path("/proc/self/cgroup")
_MEMINFO = Path("/proc/meminfo")
# cgroup v1 reports "no limit" as a huge number (a page-rounded 2**63 - 1), not as a word.
_V1_UNLIMITED = 1 << 60


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


def available_memory(
    cgroup_root: Path = _CGROUP_ROOT, proc_cgroup: Path = _PROC_CGROUP, meminfo: Path = _MEMINFO
) -> int | None:
    """Bytes this process tree may still allocate: the machine's available memory, capped by
    the room left under the cgroup's limit; None where neither can be read."""
    found = []
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    limit = cgroup_memory_limit(cgroup_root, proc_cgroup)
    if limit is not None:
        limit_bytes, used = limit
        found.append(max(0, limit_bytes - used))
    return min(found) if found else None


def cgroup_memory_limit(
    cgroup_root: Path = _CGROUP_ROOT, proc_cgroup: Path = _PROC_CGROUP
) -> tuple[int, int] | None:
    """(limit, current usage) in bytes of this process's cgroup (v2, else v1), or None."""
    paths = _cgroup_paths(proc_cgroup)
    for folder in _candidates(cgroup_root, paths.get("", "/")):
        found = _read_pair(folder / "memory.max", folder / "memory.current")
        if found is not None:
            return found
    for folder in _candidates(cgroup_root / "memory", paths.get("memory", "/")):
        found = _read_pair(folder / "memory.limit_in_bytes", folder / "memory.usage_in_bytes")
        if found is not None:
            return found
    return None


def _read_pair(limit_file: Path, usage_file: Path) -> tuple[int, int] | None:
    try:
        limit = limit_file.read_text().strip()
    except OSError:
        return None
    if limit == "max" or not limit.isdigit() or int(limit) >= _V1_UNLIMITED:
        return None
    try:
        used = int(usage_file.read_text().strip())
    except (OSError, ValueError):
        used = 0
    return int(limit), used


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
