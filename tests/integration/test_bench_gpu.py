"""`python -m bench gpu`: skips cleanly without CUDA, and measures every precision with it."""

from __future__ import annotations

import math

import pytest
import torch

from bench.suites import Options, gpu


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the run without CUDA")
def test_without_cuda_it_says_so_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert gpu.GpuSuite().run(Options(quick=True)) == 0
    assert "skipped, torch sees no CUDA device" in capsys.readouterr().out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_every_case_and_ratio_is_measured() -> None:  # pragma: no cover - GPU only
    results = gpu.measure(quick=True)
    assert results is not None
    assert len(results["cases"]) == len(gpu.CASES)
    assert all(math.isfinite(value) and value > 0 for value in results["ratios"].values())
    assert "graph_ms" in results["cases"][0]  # the small single-row request replays a graph
