"""GPU benchmark: the MC engine on CUDA, eager and from CUDA graphs, at fp32, tf32 and bf16.

`python -m bench gpu [--quick]`; without a CUDA device it says so and exits 0. In one run:
- naive: T forward passes in train mode on the GPU (what hand-written servers do);
- eager: `MCDropoutEngine.sample` launching each kernel; graph: the same from a CUDA graph
  (small requests only, as served with DROPSERVE_CUDA_GRAPHS);
- tf32 / bf16: the engine at those precisions; their error is the MC mean's shift in predictive
  standard deviations against fp32 on the same masks (the quantity `precision=auto` bounds);
- floor: the fp32 matmuls of the same T x B forward, timed alone.
Times include copying the answer back to the host, as serving does.
"""

from __future__ import annotations

import itertools
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.harness.models import BENCH_MODELS, write_bundle
from bench.harness.report import print_ratios, print_table
from bench.suites.base import Options, finish
from bench.suites.engine import CHUNK_ELEMENTS, median_ms
from service.bundle import Bundle
from service.engines import MCDropoutEngine
from service.engines.cuda_graphs import cuda_capture
from service.engines.precision import Precision

__all__ = ["CASES", "GpuSuite", "measure"]

# (model, rows, passes): small requests, where launches dominate, and large ones, where FLOPs do
CASES = (("small", 1, 100), ("small", 32, 100), ("large", 1, 100), ("large", 64, 1000))


def _case(bundle: Bundle, rows: int, passes: int, budget_s: float) -> dict[str, Any]:
    cuda = torch.device("cuda")
    config = bundle.manifest.mlp_config()
    features = np.random.default_rng(0).normal(size=(rows, config.n_features))
    eager = MCDropoutEngine(bundle, cuda, CHUNK_ELEMENTS)
    graphed = MCDropoutEngine(bundle, cuda, CHUNK_ELEMENTS, graph_capture=cuda_capture)
    eager.load()
    graphed.load()
    network = bundle.network.to(cuda)
    x = torch.as_tensor(features, dtype=torch.float32, device=cuda)

    def naive() -> torch.Tensor:
        network.train()
        with torch.no_grad():
            out = torch.stack([network(x) for _ in range(passes)]).cpu()
        network.eval()
        return out

    widths = [config.n_features, *config.hidden, config.n_outputs]
    operands = [
        (torch.randn(passes * rows, a, device=cuda), torch.randn(a, b, device=cuda))
        for a, b in itertools.pairwise(widths)
    ]

    def floor() -> None:
        for left, right in operands:
            torch.matmul(left, right)
        torch.cuda.synchronize()

    def sample(engine: MCDropoutEngine, precision: Precision) -> torch.Tensor:
        return engine.sample(features, passes, seed=1, precision=precision)

    result: dict[str, Any] = {
        "naive_ms": median_ms(naive, budget_s),
        "floor_ms": median_ms(floor, budget_s),
    }
    reference = sample(eager, "fp32")
    std = reference.std(dim=0).clamp_min(1e-12)
    precisions: tuple[Precision, ...] = ("fp32", "tf32", "bf16")
    for precision in precisions:
        result[f"{precision}_ms"] = median_ms(partial(sample, eager, precision), budget_s)
        got = sample(eager, precision)
        result[f"{precision}_mean_shift_std"] = float(
            ((got.mean(dim=0) - reference.mean(dim=0)).abs() / std).max()
        )
        result[f"{precision}_variance_rel"] = float(
            (got.var(dim=0) / reference.var(dim=0).clamp_min(1e-24) - 1.0).abs().max()
        )
    fits = graphed._graph_cache("fp32")
    if fits is not None and fits.bucket(rows, passes) is not None:
        result["graph_ms"] = median_ms(lambda: sample(graphed, "fp32"), budget_s)
    return result


def measure(quick: bool = False) -> dict[str, Any] | None:
    """Run the GPU benchmark and print it; None when there is no CUDA device."""
    if not torch.cuda.is_available():
        print("bench gpu: skipped, torch sees no CUDA device")
        return None
    budget = 0.2 if quick else 1.0
    rows_out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        bundles = {name: write_bundle(Path(folder), model) for name, model in BENCH_MODELS.items()}
        for name, rows, passes in CASES:
            case = _case(bundles[name], rows, passes, budget)
            rows_out.append({"model": name, "B": rows, "T": passes, **case})
            print(f"  {name} B={rows} T={passes}: fp32 {case['fp32_ms']:.3f} ms", flush=True)
    print_table(
        [
            "model",
            "B",
            "T",
            "naive",
            "fp32",
            "graph",
            "tf32",
            "bf16",
            "floor",
            "tf32 err",
            "bf16 err",
        ],
        [
            [
                r["model"],
                r["B"],
                r["T"],
                r["naive_ms"],
                r["fp32_ms"],
                r.get("graph_ms", "-"),
                r["tf32_ms"],
                r["bf16_ms"],
                r["floor_ms"],
                r["tf32_mean_shift_std"],
                r["bf16_mean_shift_std"],
            ]
            for r in rows_out
        ],
    )
    small = rows_out[0]
    large = rows_out[-1]
    ratios = {
        "gpu_small_B1_T100_graph_ms": small.get("graph_ms", small["fp32_ms"]),
        "gpu_small_B1_T100_speedup_vs_naive": small["naive_ms"]
        / small.get("graph_ms", small["fp32_ms"]),
        "gpu_large_fp32_vs_floor": large["fp32_ms"] / large["floor_ms"],
        "gpu_large_tf32_speedup": large["fp32_ms"] / large["tf32_ms"],
        "gpu_large_bf16_speedup": large["fp32_ms"] / large["bf16_ms"],
        "gpu_large_bf16_mean_shift_std": large["bf16_mean_shift_std"],
        "gpu_large_tf32_mean_shift_std": large["tf32_mean_shift_std"],
    }
    print()
    print_ratios(ratios)
    return {
        "quick": quick,
        "device": torch.cuda.get_device_name(0),
        "cases": rows_out,
        "ratios": ratios,
    }


class GpuSuite:
    """`python -m bench gpu`: see the module's notes; without CUDA it says so and succeeds."""

    name = "gpu"

    def run(self, options: Options) -> int:
        return finish(self.name, measure(quick=options.quick), options)
