"""Engine benchmark: the served MC engine against the naive loop and the GEMM floor.

`python -m bench engine [--quick]`. For each model, T and B it times, in one run:
- naive: T forward passes of the same network in train mode (what hand-written servers do);
- engine: `MCDropoutEngine.sample`, the path the uncertainty endpoint runs;
- floor: the same T x B forward as bare `torch.matmul`s at the same shapes (no masks, no
  activations), i.e. the FLOPs divided by this machine's matmul rate at those shapes.
and the deterministic path: ONNX Runtime against calling PyTorch eval directly. For the large
and small models at T=100 it also times the engine in bf16 (`DROPSERVE_PRECISION=auto` picks it
for the large one on a CPU with native bf16, not for the narrow small one), and reports how much
one 32-row call saves over 32 one-row calls: the most that batching single-row requests can gain
in the engine itself.
Medians of repeated runs, torch and ONNX Runtime on one intra-op thread (steady on shared cores;
see docs/performance.md).
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.harness.models import BENCH_MODELS, write_bundle
from bench.harness.report import print_ratios, print_table
from bench.suites.base import Options, finish
from service.bundle import Bundle
from service.engines import MCDropoutEngine, OnnxEngine
from service.engines.precision import cpu_has_native_bf16

__all__ = ["CHUNK_ELEMENTS", "EngineSuite", "measure", "median_ms"]

CHUNK_ELEMENTS = 2_097_152  # the served default (DROPSERVE_MC_CHUNK_ELEMENTS)


def median_ms(func: Callable[[], object], budget_s: float, min_runs: int = 3) -> float:
    """Median wall time of `func` in ms, repeating until `budget_s` is spent (after a warm-up)."""
    func()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
        if len(times) >= 200:
            break
    return statistics.median(times) * 1e3


def _mc_case(
    bundle: Bundle, rows: int, passes: int, budget_s: float, *, bf16: bool = False
) -> dict[str, Any]:
    config = bundle.manifest.mlp_config()
    device = torch.device("cpu")
    engine = MCDropoutEngine(bundle, device, CHUNK_ELEMENTS)
    engine.load()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(rows, config.n_features))
    x = torch.as_tensor(features, dtype=torch.float32)
    network = bundle.network

    def naive() -> torch.Tensor:
        network.train()
        with torch.no_grad():
            out = torch.stack([network(x) for _ in range(passes)])
        network.eval()
        return out

    widths = [config.n_features, *config.hidden, config.n_outputs]
    operands = [
        (torch.randn(passes * rows, a), torch.randn(a, b)) for a, b in itertools.pairwise(widths)
    ]

    def floor() -> None:
        for left, right in operands:
            torch.matmul(left, right)

    flops = 2 * passes * rows * sum(a * b for a, b in itertools.pairwise(widths))
    timings = {
        "naive_ms": median_ms(naive, budget_s),
        "engine_ms": median_ms(lambda: engine.sample(features, passes, seed=1), budget_s),
        "floor_ms": median_ms(floor, budget_s),
    }
    if bf16:
        timings["engine_bf16_ms"] = median_ms(
            lambda: engine.sample(features, passes, seed=1, precision="bf16"), budget_s
        )
    return {**timings, "gflops_engine": flops / timings["engine_ms"] / 1e6}


def _deterministic_case(bundle: Bundle, rows: int, budget_s: float) -> dict[str, float]:
    config = bundle.manifest.mlp_config()
    onnx_engine = OnnxEngine(bundle, torch.device("cpu"), threads=1)
    onnx_engine.load()
    features = np.random.default_rng(0).normal(size=(rows, config.n_features))
    x = torch.as_tensor(features, dtype=torch.float32)

    def torch_eval() -> torch.Tensor:
        with torch.inference_mode():
            out: torch.Tensor = bundle.network(x, stochastic=False)
            return out

    return {
        "onnx_ms": median_ms(lambda: onnx_engine.predict(features), budget_s),
        "torch_eval_ms": median_ms(torch_eval, budget_s),
    }


def measure(quick: bool = False) -> dict[str, Any]:
    """Run the engine benchmark, print its table and RATIO lines, return the results."""
    torch.set_num_threads(1)
    budget = 0.15 if quick else 1.0
    passes_grid = (10, 100) if quick else (10, 100, 1000)
    cases: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        bundles = {name: write_bundle(Path(folder), model) for name, model in BENCH_MODELS.items()}
        for name, bundle in bundles.items():
            for rows in (1, 32):
                for passes in passes_grid:
                    bf16 = name in ("small", "large") and passes == 100
                    result = _mc_case(bundle, rows, passes, budget, bf16=bf16)
                    cases.append({"model": name, "B": rows, "T": passes, **result})
        deterministic: list[dict[str, Any]] = [
            {"model": name, "B": rows, **_deterministic_case(bundles[name], rows, budget)}
            for name, rows in (("small", 1), ("large", 64))
        ]
    print_table(
        ["model", "B", "T", "naive ms", "engine ms", "floor ms", "x naive", "x floor", "GFLOP/s"],
        [
            [
                c["model"],
                c["B"],
                c["T"],
                c["naive_ms"],
                c["engine_ms"],
                c["floor_ms"],
                c["naive_ms"] / c["engine_ms"],
                c["engine_ms"] / c["floor_ms"],
                c["gflops_engine"],
            ]
            for c in cases
        ],
    )
    print()
    print_table(
        ["model", "B", "T", "fp32 ms", "bf16 ms", "bf16 speedup"],
        [
            [
                c["model"],
                c["B"],
                c["T"],
                c["engine_ms"],
                c["engine_bf16_ms"],
                c["engine_ms"] / c["engine_bf16_ms"],
            ]
            for c in cases
            if "engine_bf16_ms" in c
        ],
    )
    print(f"native bf16 on this CPU: {'yes' if cpu_has_native_bf16() else 'no'}")
    print()
    print_table(
        ["model", "B", "onnx ms", "torch eval ms", "torch / onnx"],
        [
            [
                d["model"],
                d["B"],
                d["onnx_ms"],
                d["torch_eval_ms"],
                d["torch_eval_ms"] / d["onnx_ms"],
            ]
            for d in deterministic
        ],
    )

    def find(model: str, rows: int, passes: int) -> dict[str, Any]:
        return next(c for c in cases if (c["model"], c["B"], c["T"]) == (model, rows, passes))

    small = find("small", 1, 100)
    large = find("large", 32, 100) if quick else find("large", 1, 1000)
    ratios = {
        "engine_small_B1_T100_speedup_vs_naive": small["naive_ms"] / small["engine_ms"],
        "engine_large_vs_gemm_floor": large["engine_ms"] / large["floor_ms"],
        "engine_large_B32_T100_speedup_vs_naive": (
            find("large", 32, 100)["naive_ms"] / find("large", 32, 100)["engine_ms"]
        ),
        # 32 one-row calls against one 32-row call: the engine's own gain from batching.
        "engine_large_T100_batching_gain": (
            32 * find("large", 1, 100)["engine_ms"] / find("large", 32, 100)["engine_ms"]
        ),
        "engine_large_T100_batching_gain_bf16": (
            32 * find("large", 1, 100)["engine_bf16_ms"] / find("large", 32, 100)["engine_bf16_ms"]
        ),
        "engine_small_B1_T100_bf16_speedup": (
            find("small", 1, 100)["engine_ms"] / find("small", 1, 100)["engine_bf16_ms"]
        ),
        "engine_large_B32_T100_bf16_speedup": (
            find("large", 32, 100)["engine_ms"] / find("large", 32, 100)["engine_bf16_ms"]
        ),
        "onnx_small_B1_speedup_vs_torch_eval": (
            deterministic[0]["torch_eval_ms"] / deterministic[0]["onnx_ms"]
        ),
        "onnx_large_B64_speedup_vs_torch_eval": (
            deterministic[1]["torch_eval_ms"] / deterministic[1]["onnx_ms"]
        ),
    }
    print()
    print_ratios(ratios)
    return {
        "quick": quick,
        "native_bf16": cpu_has_native_bf16(),
        "mc": cases,
        "deterministic": deterministic,
        "ratios": ratios,
    }


class EngineSuite:
    """`python -m bench engine`: see the module's notes."""

    name = "engine"

    def run(self, options: Options) -> int:
        return finish(self.name, measure(quick=options.quick), options)
