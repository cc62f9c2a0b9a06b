"""The cores and memory a server may use: affinity capped by cgroup quotas, memory capped by
cgroup limits (v2 and v1), and what DROPSERVE_PROCESSES=0 makes of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from service import resources
from service.config import MAX_PROCESSES, Settings
from service.hosting.sizing import PROCESS_BASE_BYTES, estimate_process_bytes, plan_processes
from service.resources import (
    available_cpus,
    available_memory,
    cgroup_cpu_limit,
    cgroup_memory_limit,
)
from tests.factories import make_bundle


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def host(tmp_path: Path) -> tuple[Path, Path]:
    """An empty cgroup mount and a /proc/self/cgroup naming the root cgroup."""
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/\n")
    return tmp_path / "cgroup", proc


@pytest.mark.parametrize(
    ("cpu_max", "cores"),
    [("200000 100000\n", 2.0), ("150000 100000\n", 1.5), ("50000 100000\n", 0.5)],
)
def test_a_v2_quota_in_cores(host: tuple[Path, Path], cpu_max: str, cores: float) -> None:
    root, proc = host
    _write(root / "cpu.max", cpu_max)
    assert cgroup_cpu_limit(root, proc) == cores


def test_no_quota_is_none(host: tuple[Path, Path]) -> None:
    root, proc = host
    assert cgroup_cpu_limit(root, proc) is None  # nothing mounted
    _write(root / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(root, proc) is None
    _write(root / "cpu.max", "garbage\n")
    assert cgroup_cpu_limit(root, proc) is None


def test_the_process_own_v2_cgroup_is_read_below_the_mount(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "proc-cgroup"
    proc.write_text("0::/kubepods/pod1/box\n")
    _write(root / "cpu.max", "max 100000\n")
    _write(root / "kubepods/pod1/box/cpu.max", "300000 100000\n")
    assert cgroup_cpu_limit(root, proc) == 3.0


def test_a_v1_cfs_quota(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "proc-cgroup"
    proc.write_text("4:memory:/box\n2:cpu,cpuacct:/box\n")
    _write(root / "cpu,cpuacct/box/cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu,cpuacct/box/cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(root, proc) is None  # -1: no quota
    _write(root / "cpu,cpuacct/box/cpu.cfs_quota_us", "250000\n")
    assert cgroup_cpu_limit(root, proc) == 2.5


@pytest.mark.parametrize(
    ("affinity", "cpu_max", "expected"),
    [
        (64, "200000 100000", 2),  # `docker run --cpus 2` on a 64-core host
        (64, "150000 100000", 2),  # a fractional quota rounds up
        (64, "20000 100000", 1),  # at least one
        (4, "max 100000", 4),  # no quota: the affinity mask
        (3, "800000 100000", 3),  # the smaller of the two
    ],
)
def test_available_cpus_caps_affinity_by_the_quota(
    monkeypatch: pytest.MonkeyPatch,
    host: tuple[Path, Path],
    affinity: int,
    cpu_max: str,
    expected: int,
) -> None:
    root, proc = host
    _write(root / "cpu.max", cpu_max)
    monkeypatch.setattr(resources.os, "sched_getaffinity", lambda _pid: set(range(affinity)))
    assert available_cpus(root, proc) == expected


MIB = 1 << 20


@pytest.mark.parametrize(
    ("processes", "cuda", "expected"),
    [
        (3, False, 3),  # an explicit count stands
        (3, True, 3),
        (0, False, 6),  # one per core
        (0, True, 1),  # on CUDA one process holds the models on the GPU
    ],
)
def test_processes_0_is_one_per_core_on_the_cpu(processes: int, cuda: bool, expected: int) -> None:
    settings = Settings(processes=processes)
    plan = plan_processes(settings, cuda=cuda, cpus=6, memory=None, process_bytes=300 * MIB)
    assert plan.count == expected


def test_processes_0_stops_at_the_settings_bound() -> None:
    plan = plan_processes(Settings(processes=0), cuda=False, cpus=192, memory=None, process_bytes=1)
    assert plan.count == MAX_PROCESSES
    assert f"at most {MAX_PROCESSES}" in plan.reason


def test_processes_0_starts_no_more_than_fit_in_memory() -> None:
    # 16 cores, 2 GiB available, 400 MiB a process: 3 fit with a quarter kept for requests.
    plan = plan_processes(
        Settings(processes=0), cuda=False, cpus=16, memory=2048 * MIB, process_bytes=400 * MIB
    )
    assert plan.count == 3
    assert "memory allows 3: 2048 MiB available, about 400 MiB a process" in plan.reason
    tiny = plan_processes(
        Settings(processes=0), cuda=False, cpus=16, memory=100 * MIB, process_bytes=400 * MIB
    )
    assert tiny.count == 1  # always one


def test_the_process_size_counts_every_bundle_version(tmp_path: Path) -> None:
    assert estimate_process_bytes(tmp_path) == PROCESS_BASE_BYTES  # no models
    folders = [make_bundle(tmp_path, name="a", seed=1), make_bundle(tmp_path, name="a", seed=2)]
    files = sum(f.stat().st_size for folder in folders for f in folder.iterdir())
    assert files > 0
    assert estimate_process_bytes(tmp_path) == PROCESS_BASE_BYTES + 4 * files


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"memory.max": "2147483648\n", "memory.current": "536870912\n"}, (2 << 30, 512 * MIB)),
        ({"memory.max": "max\n", "memory.current": "1\n"}, None),
        ({}, None),
    ],
)
def test_a_v2_memory_limit(
    host: tuple[Path, Path], files: dict[str, str], expected: tuple[int, int] | None
) -> None:
    root, proc = host
    for name, text in files.items():
        _write(root / name, text)
    assert cgroup_memory_limit(root, proc) == expected


def test_a_v1_memory_limit_and_its_unlimited_value(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "proc-cgroup"
    proc.write_text("4:memory:/box\n2:cpu,cpuacct:/box\n")
    _write(root / "memory/box/memory.limit_in_bytes", "9223372036854771712\n")
    assert cgroup_memory_limit(root, proc) is None
    _write(root / "memory/box/memory.limit_in_bytes", "1073741824\n")
    _write(root / "memory/box/memory.usage_in_bytes", "104857600\n")
    assert cgroup_memory_limit(root, proc) == (1 << 30, 100 * MIB)


def test_available_memory_is_the_tighter_of_the_machine_and_the_cgroup(
    host: tuple[Path, Path], tmp_path: Path
) -> None:
    root, proc = host
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 8388608 kB\nMemAvailable: 4194304 kB\n")
    assert available_memory(root, proc, meminfo) == 4 << 30
    _write(root / "memory.max", "2147483648\n")
    _write(root / "memory.current", "536870912\n")
    assert available_memory(root, proc, meminfo) == (2 << 30) - 512 * MIB
