"""Precision of the MC forward: what `auto` picks, and what bf16 costs against fp32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from service.bundle import load_bundle
from service.engines import MCDropoutEngine
from service.engines import precision as precision_module
from service.engines.precision import (
    CPU_BF16_MIN_LAYER_MACS,
    ERROR_IN_STD,
    cpu_has_native_bf16,
    matmul_precision,
    resolve_precision,
)
from tests.factories import make_bundle, raw_features

CPU = torch.device("cpu")
CUDA = torch.device("cuda")
LARGE = 512 * 512  # multiply-adds of the largest layer: a network bf16 pays off for on a CPU


@pytest.mark.parametrize(
    ("setting", "device", "samples", "expected"),
    [
        ("fp32", CUDA, 100, "fp32"),
        ("bf16", CPU, 100, "bf16"),  # asked for explicitly: honoured anywhere
        ("tf32", CUDA, 100, "tf32"),
        ("tf32", CPU, 100, "fp32"),  # no tf32 outside NVIDIA GPUs
        ("auto", CUDA, 10, "bf16"),
        ("auto", CUDA, 100, "bf16"),  # 0.05 std <= half of 1/sqrt(100)
        ("auto", CUDA, 101, "tf32"),
        ("auto", CUDA, 10_000, "tf32"),
        ("auto", CUDA, 27_777, "tf32"),
        ("auto", CUDA, 27_778, "fp32"),  # 0.003 std > half of 1/sqrt(27778)
    ],
)
def test_resolve_precision(setting: str, device: torch.device, samples: int, expected: str) -> None:
    chosen = resolve_precision(setting, device, samples, largest_layer_macs=LARGE)  # type: ignore[arg-type]
    assert chosen == expected


@pytest.mark.parametrize(
    ("native", "layer", "samples", "expected"),
    [
        (False, LARGE, 10, "fp32"),
        (True, LARGE, 10, "bf16"),
        (True, LARGE, 100, "bf16"),
        (True, LARGE, 101, "fp32"),  # no tf32 on a CPU
        (False, LARGE, 101, "fp32"),
        (True, CPU_BF16_MIN_LAYER_MACS, 10, "bf16"),
        (True, CPU_BF16_MIN_LAYER_MACS - 1, 10, "fp32"),  # narrow: bf16 measured slower
        (True, 8 * 50, 10, "fp32"),
    ],
)
def test_auto_on_the_cpu_takes_bf16_only_where_it_is_faster(
    monkeypatch: pytest.MonkeyPatch, native: bool, layer: int, samples: int, expected: str
) -> None:
    # Emulated bf16, and bf16 on narrow networks, ran slower than fp32.
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", CPU, samples, largest_layer_macs=layer) == expected


def test_the_gpu_ignores_the_layer_size() -> None:
    assert resolve_precision("auto", CUDA, 10, largest_layer_macs=8 * 50) == "bf16"


def test_native_bf16_detection_follows_the_cpu_flags() -> None:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo to compare with")
    flags = set(cpuinfo.read_text().split())
    if "avx512_bf16" in flags:
        assert cpu_has_native_bf16()
    if not flags & {"avx512_bf16", "amx_bf16", "amx_tile"}:
        assert not cpu_has_native_bf16()


@pytest.mark.parametrize("device", [CPU, CUDA])
def test_auto_keeps_the_precision_error_under_half_the_mc_standard_error(
    monkeypatch: pytest.MonkeyPatch, device: torch.device
) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    for samples in (1, 10, 100, 1000, 10_000, 100_000):
        chosen = resolve_precision("auto", device, samples, largest_layer_macs=LARGE)
        assert ERROR_IN_STD[chosen] <= 0.5 / samples**0.5


def test_the_error_model_is_the_documented_one() -> None:
    # Pinned: `auto`'s choices and the docs follow from these bounds, so a change is deliberate.
    assert ERROR_IN_STD == {"bf16": 0.05, "tf32": 0.003, "fp32": 0.0}


@pytest.mark.parametrize(
    ("device", "samples", "expected"),
    [
        # 0.05 <= 0.5 / sqrt(T) up to T = 100; 0.003 <= 0.5 / sqrt(T) up to T = 27,777.
        (CUDA, 1, "bf16"),
        (CUDA, 100, "bf16"),
        (CUDA, 101, "tf32"),
        (CUDA, 27_777, "tf32"),
        (CUDA, 27_778, "fp32"),
        (CPU, 100, "bf16"),
        (CPU, 101, "fp32"),  # no tf32 on a CPU
    ],
)
def test_auto_picks_by_the_number_of_passes(
    monkeypatch: pytest.MonkeyPatch, device: torch.device, samples: int, expected: str
) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", device, samples, largest_layer_macs=LARGE) == expected


def test_matmul_precision_changes_nothing_on_the_cpu() -> None:
    before = torch.backends.cuda.matmul.fp32_precision
    with matmul_precision(CPU, "tf32"):
        assert torch.backends.cuda.matmul.fp32_precision == before


def test_bf16_passes_stay_within_a_fraction_of_the_predictive_std(tmp_path: Path) -> None:
    """Same masks (same seed), bf16 against fp32, on the CPU: the mean moves by a small share of
    the predictive std, as the error model behind `auto` assumes, and outputs stay float32."""
    path = make_bundle(tmp_path, name="p", seed=3, hidden=(64, 64), dropout=(0.1, 0.1))
    bundle = load_bundle(path)
    engine = MCDropoutEngine(bundle, CPU, 1 << 20)
    engine.load()
    features = raw_features(bundle.manifest.standardizer(), rows=16)
    full = engine.sample(features, 400, seed=2)
    half = engine.sample(features, 400, seed=2, precision="bf16")
    assert half.dtype == torch.float32
    std = full.std(dim=0)
    shift = ((half.mean(dim=0) - full.mean(dim=0)).abs() / std).max().item()
    assert 0.0 < shift < 0.05  # the bound `auto` assumes for bf16
    spread = (half.std(dim=0) / std - 1.0).abs().max().item()
    assert spread < 0.02


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tf32_is_switched_on_for_the_block_only() -> None:  # pragma: no cover - GPU only
    matmul = torch.backends.cuda.matmul
    matmul.fp32_precision = "ieee"
    with matmul_precision(CUDA, "tf32"):
        assert matmul.fp32_precision == "tf32"
    assert matmul.fp32_precision == "ieee"
    with matmul_precision(CUDA, "fp32"):
        assert matmul.fp32_precision == "ieee"


@pytest.mark.parametrize(
    ("task", "hidden", "input_dropout"),
    [
        ("regression", (16,), 0.0),
        ("regression", (), 0.0),  # one layer takes both the feature and the target scaling
        ("classification", (16, 8), 0.0),
        ("regression", (16,), 0.1),  # input dropout: nothing is folded
    ],
)
def test_fp32_with_the_standardisation_folded_in_equals_it_applied_outside(
    tmp_path: Path, task: str, hidden: tuple[int, ...], input_dropout: float
) -> None:
    """fp32 runs a network that takes raw features (and gives original units); tf32, which on
    the CPU is plain fp32 arithmetic, standardises outside. Same seed, same masks: equal up
    to float rounding."""
    path = make_bundle(
        tmp_path,
        name="f",
        task=task,  # type: ignore[arg-type]
        seed=5,
        hidden=hidden,
        dropout=(0.2,) * len(hidden),
        input_dropout=input_dropout,
    )
    bundle = load_bundle(path)
    engine = MCDropoutEngine(bundle, CPU, 1 << 20)
    engine.load()
    features = raw_features(bundle.manifest.standardizer(), rows=6)
    folded = engine.sample(features, 300, seed=4, precision="fp32")
    outside = engine.sample(features, 300, seed=4, precision="tf32")
    torch.testing.assert_close(folded, outside, rtol=1e-5, atol=1e-5 * outside.abs().max().item())
    # The comparison means something only where fp32 did run the folded network.
    assert engine._prepared("fp32").raw_units == (input_dropout == 0.0)
