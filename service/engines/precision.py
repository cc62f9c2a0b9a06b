"""Arithmetic precision of the MC forward: fp32, tf32 or bf16, or `auto` per request.

Lower precision moves the MC mean by a fraction of a predictive standard deviation (tf32 less
than bf16), while the Monte-Carlo estimate itself is uncertain by its standard error,
std / sqrt(T). `auto` takes the fastest precision whose error bound (below) stays under half of
that standard error, so the choice can never be what limits an answer's accuracy. The bounds
are assumptions until measured on a GPU (`bench/gpu_check.sh`).

tf32 only exists on NVIDIA GPUs: elsewhere it runs (and is reported) as fp32. On a CPU, `auto`
takes bf16 under the same rule only where the CPU multiplies bf16 natively (AVX512-BF16 or AMX)
and the network has a layer of at least 256 x 256 multiply-adds. On a 2-core AVX512-BF16 EPYC,
T=100 passes of the 64-3x512-10 benchmark model ran 1.1-4x faster in bf16 (1 to 32 rows), of
16-256-256-1 1.1-1.5x; narrower networks ran 0.55-0.7x as fast (16-128-128-1, 8-50-1): their
time goes to casts and elementwise work, not matrix products. Without native bf16 it is
emulated and slower than fp32, so `auto` stays fp32.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch

__all__ = [
    "CPU_BF16_MIN_LAYER_MACS",
    "ERROR_IN_STD",
    "Precision",
    "Setting",
    "cpu_has_native_bf16",
    "matmul_precision",
    "resolve_precision",
]

Setting = Literal["fp32", "tf32", "bf16", "auto"]
Precision = Literal["fp32", "tf32", "bf16"]

# Assumed worst shift of the MC mean, in predictive standard deviations (bf16 keeps 7 bits of
# mantissa, tf32 10); `python -m bench gpu` measures the real shift on a GPU.
ERROR_IN_STD: dict[Precision, float] = {"bf16": 0.05, "tf32": 0.003, "fp32": 0.0}
_SAFETY = 0.5  # the precision error must stay under this share of the MC standard error
# The smallest layer (in multiply-adds per row) for which bf16 beat fp32 on a CPU.
CPU_BF16_MIN_LAYER_MACS = 256 * 256


def resolve_precision(
    setting: Setting, device: torch.device, samples: int, *, largest_layer_macs: int
) -> Precision:
    """The precision a request of `samples` passes runs at on `device`, for a network whose
    largest layer costs `largest_layer_macs` multiply-adds per row."""
    cuda = device.type == "cuda"
    if setting != "auto":
        return "fp32" if setting == "tf32" and not cuda else setting
    faster: tuple[Precision, ...] = ()
    if cuda:
        faster = ("bf16", "tf32")
    elif (
        device.type == "cpu"
        and largest_layer_macs >= CPU_BF16_MIN_LAYER_MACS
        and cpu_has_native_bf16()
    ):
        faster = ("bf16",)
    standard_error = samples**-0.5  # in predictive standard deviations
    for precision in faster:
        if ERROR_IN_STD[precision] <= _SAFETY * standard_error:
            return precision
    return "fp32"


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX) for oneDNN."""
    # torch exposes the checks only as private helpers; a torch without them counts as no.
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


# tf32 is a process-wide switch in torch, so GPU forwards that set it take turns; they queue on
# the device's stream anyway.
_SWITCH = threading.Lock()


@contextmanager
def matmul_precision(device: torch.device, precision: Precision) -> Iterator[None]:
    """Run the block with float32 matmuls in tf32 exactly when `precision` is tf32 (CUDA)."""
    if device.type != "cuda":
        yield
        return
    # Only torch's newer switch is used: reading or setting the legacy `allow_tf32` after it
    # raises.
    matmul = torch.backends.cuda.matmul
    with _SWITCH:
        previous = matmul.fp32_precision
        matmul.fp32_precision = "tf32" if precision == "tf32" else "ieee"
        try:
            yield
        finally:
            matmul.fp32_precision = previous
