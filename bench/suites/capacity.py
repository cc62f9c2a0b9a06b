"""The compute ceiling of a batching case: what the cores could serve with no HTTP at all.

The batching suite compares one server with dynamic batching on and off. However well batching
works, it cannot serve more requests per second than the engine computes them: this runs the
data plane's batched work (stacked one-row requests, each with its own seed, then their
summaries) on as many threads as the server has inference workers, for a fixed time, and
counts requests. Its ratio to the batching-off server says how far batching could go on this
machine, measured in the same run.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import torch

from service.config import Settings
from service.dataplane.registry import ModelRegistry
from service.dataplane.summaries import summarise_requests
from service.engines.precision import Precision

__all__ = ["engine_capacity"]


def engine_capacity(
    models_dir: Path,
    model: str,
    samples: int,
    batch: int,
    seconds: float,
    *,
    precision: Precision = "fp32",
) -> float:
    """Requests per second of `batch`-request batches (one row each, T=`samples`) on the
    server's inference workers, without HTTP."""
    settings = Settings(models_dir=models_dir, warmup_rounds=0, device="cpu", torch_threads=1)
    torch.set_num_threads(settings.torch_threads)  # as the server does (DROPSERVE_ENV)
    registry = ModelRegistry(settings)
    registry.load_all()
    loaded = registry.get(model)
    regression = loaded.manifest.task == "regression"
    tau = torch.tensor(loaded.manifest.tau, dtype=torch.float64) if regression else None
    rows = np.random.default_rng(0).normal(size=(batch, len(loaded.manifest.features)))

    def one_batch(first_seed: int) -> None:
        segments = [(1, first_seed + i) for i in range(batch)]
        draws = loaded.mc.sample_segments(rows, segments, samples, precision=precision)
        summarise_requests(draws, [1] * batch, [0.95] * batch, tau)

    one_batch(0)  # warm-up
    counts = [0] * settings.workers
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        while time.perf_counter() < deadline:
            one_batch(index * 1_000_000 + counts[index] * batch)
            counts[index] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(settings.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) * batch / (time.perf_counter() - started)
