"""bench/suites/capacity.py: the engine ceiling of the batching suite runs the served batch work."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.harness.models import BENCH_MODELS, write_bundle
from bench.suites import capacity


def test_the_ceiling_runs_whole_batches_of_seeded_one_row_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_bundle(tmp_path, BENCH_MODELS["small"])
    seen: list[list[tuple[int, int]]] = []
    original = capacity.summarise_requests

    def spy(
        draws: torch.Tensor, sizes: list[int], levels: list[float], tau: torch.Tensor | None
    ) -> list[Any]:
        assert draws.shape == (20, 3, 1)  # T passes x three stacked one-row requests
        assert tau is not None  # the small model is a regression: its noise term is used
        seen.append(sizes)
        return original(draws, sizes, levels, tau)

    monkeypatch.setattr(capacity, "summarise_requests", spy)
    rate = capacity.engine_capacity(tmp_path, "small", samples=20, batch=3, seconds=0.2)
    assert math.isfinite(rate)
    assert rate > 0
    assert len(seen) >= 2  # the warm-up and at least one timed batch
    assert all(sizes == [1, 1, 1] for sizes in seen)
