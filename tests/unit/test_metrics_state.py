"""Scrape-time gauges: loaded models, device, in-flight work and CUDA memory."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from service.observability.state import state_metrics


def fake_dataplane(device: str) -> Any:
    registry = SimpleNamespace(
        device=torch.device(device), models=lambda: {"alpha": {1: None, 3: None}}
    )
    return SimpleNamespace(registry=registry, inflight=2)


def samples(dataplane: Any) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {m.name: [(s.labels, s.value) for s in m.samples] for m in state_metrics(dataplane)}


def test_cpu_state() -> None:
    found = samples(fake_dataplane("cpu"))
    assert found["dropserve_inference_in_flight"] == [({}, 2)]
    assert found["dropserve_model_loaded"] == [
        ({"model": "alpha", "version": "1"}, 1),
        ({"model": "alpha", "version": "3"}, 1),
    ]
    assert found["dropserve_device_info"] == [
        ({"device": "cpu", "onnx_provider": "CPUExecutionProvider"}, 1)
    ]
    assert found["dropserve_gpu_memory_allocated_bytes"] == []
    assert found["dropserve_gpu_memory_reserved_bytes"] == []


def test_cuda_memory_is_read_at_scrape_time(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[torch.device] = []

    def allocated(device: torch.device) -> int:
        asked.append(device)
        return 1024

    monkeypatch.setattr(torch.cuda, "memory_allocated", allocated)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 4096)
    found = samples(fake_dataplane("cuda:0"))
    assert found["dropserve_gpu_memory_allocated_bytes"] == [({"device": "cuda:0"}, 1024)]
    assert found["dropserve_gpu_memory_reserved_bytes"] == [({"device": "cuda:0"}, 4096)]
    assert asked == [torch.device("cuda:0")]
    assert found["dropserve_device_info"][0][0]["device"] == "cuda:0"
