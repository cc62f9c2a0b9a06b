"""The cores a server may use: affinity capped by cgroup quotas (v2 and v1), and what
DROPSERVE_PROCESSES=0 makes of them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from service import cpus
from service.config import MAX_PROCESSES, Settings
from service.cpus import available_cpus, cgroup_cpu_limit
from service.hosting import supervisor


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
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda _pid: set(range(affinity)))
    assert available_cpus(root, proc) == expected


@pytest.mark.parametrize(
    ("processes", "device", "cuda", "expected"),
    [
        (3, "cpu", False, 3),  # an explicit count stands
        (3, "auto", True, 3),
        (0, "cpu", True, 6),  # one per core
        (0, "auto", False, 6),
        (0, "auto", True, 1),  # on CUDA one process holds the models on the GPU
        (0, "cuda", True, 1),
        (0, "cuda", False, 6),  # CUDA asked for but missing: the server falls back to the CPU
    ],
)
def test_processes_0_is_one_per_core_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch, processes: int, device: str, cuda: bool, expected: int
) -> None:
    monkeypatch.setattr(supervisor, "available_cpus", lambda: 6)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    settings = Settings(processes=processes, device=device)
    assert supervisor.process_count(settings) == expected


def test_processes_0_stops_at_the_settings_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "available_cpus", lambda: 192)
    assert supervisor.process_count(Settings(processes=0, device="cpu")) == MAX_PROCESSES
