"""How many server processes to run: the setting, or for 0 one per core, as many as fit.

One Python process serves on about one core (the GIL), so `DROPSERVE_PROCESSES=0`, the default,
runs one per core this server may use (service.resources). Each process holds its own copy of
torch, ONNX Runtime and every model, so memory bounds the count too: no more processes start
than fit in the memory available to this server, with headroom for requests. With MC dropout
on CUDA it is one process: each would hold its own CUDA context and copy of every model on the
GPU, and their kernels would queue on the same device anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.config import MAX_PROCESSES, Settings
from service.resources import available_cpus, available_memory

__all__ = ["PROCESS_BASE_BYTES", "ProcessPlan", "estimate_process_bytes", "plan_processes"]

_MIB = 1 << 20
# Resident memory of one server process with torch, ONNX Runtime and the app loaded, before its
# models: measured at 300-320 MiB on Linux with the CPU build of torch (docs/deploy.md).
PROCESS_BASE_BYTES = 320 * _MIB
# A model's files are held about four times over: the torch network, the ONNX Runtime session,
# and the MC engine's prepared (and standardisation-folded) copies.
_MODEL_COPIES = 4
# Share of the available memory the processes may take; the rest is for requests in flight.
_HEADROOM = 0.75


@dataclass(frozen=True)
class ProcessPlan:
    """The number of server processes, and why: what the server log says at startup."""

    count: int
    reason: str


def estimate_process_bytes(models_dir: Path) -> int:
    """Expected resident bytes of one server process with every bundle under `models_dir`.

    The bundle folders (`<name>/<version>/`) are globbed here rather than found with
    service.bundle's `discover`: that package imports torch, which the supervising process,
    the one that sizes the others, never needs. A stray folder only makes the estimate larger.
    """
    model_bytes = sum(
        file.stat().st_size
        for file in models_dir.glob("*/[1-9]*/*")
        if file.is_file() and file.parent.name.isdigit()
    )
    return PROCESS_BASE_BYTES + _MODEL_COPIES * model_bytes


def plan_processes(
    settings: Settings,
    *,
    cuda: bool,
    cpus: int | None = None,
    memory: int | None = None,
    process_bytes: int | None = None,
) -> ProcessPlan:
    """The processes to run for `settings`; `cuda` says whether MC dropout would run on CUDA.
    The cores, memory and per-process size are read or estimated when not given."""
    if settings.processes:
        return ProcessPlan(settings.processes, f"DROPSERVE_PROCESSES={settings.processes}")
    if cuda:
        return ProcessPlan(1, "MC dropout runs on CUDA: one process holds the models on the GPU")
    cores = available_cpus() if cpus is None else cpus
    count = min(cores, MAX_PROCESSES)
    reason = f"one per core: {cores} available (CPU affinity and cgroup quota)"
    if cores > MAX_PROCESSES:
        reason += f", at most {MAX_PROCESSES}"
    free = available_memory() if memory is None else memory
    size = (
        estimate_process_bytes(Path(settings.models_dir))
        if process_bytes is None
        else process_bytes
    )
    if free is not None:
        fit = max(1, int(free * _HEADROOM // size))
        if fit < count:
            count = fit
            reason += (
                f"; memory allows {fit}: {free / _MIB:.0f} MiB available, about "
                f"{size / _MIB:.0f} MiB a process, {1 - _HEADROOM:.0%} kept for requests"
            )
    return ProcessPlan(count, reason)
