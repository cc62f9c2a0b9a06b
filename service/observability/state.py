"""Gauges read from the server's state at scrape time: loaded models, device, GPU memory."""

from __future__ import annotations

import torch
from prometheus_client.core import GaugeMetricFamily, Metric

from service.dataplane import DataPlane
from service.device import onnx_providers

__all__ = ["state_metrics"]


def state_metrics(dataplane: DataPlane) -> list[Metric]:
    """The current values; the GPU memory gauges have samples only when MC dropout runs on CUDA."""
    registry = dataplane.registry
    device = registry.device
    in_flight = GaugeMetricFamily(
        "dropserve_inference_in_flight",
        "Inference requests running or waiting for a worker.",
        value=dataplane.inflight,
    )
    loaded = GaugeMetricFamily(
        "dropserve_model_loaded", "1 for every loaded model version.", labels=["model", "version"]
    )
    for name, versions in registry.models().items():
        for version in versions:
            loaded.add_metric([name, str(version)], 1)
    info = GaugeMetricFamily(
        "dropserve_device_info",
        "Where inference runs (value 1): the torch device of MC dropout and the first ONNX "
        "Runtime execution provider.",
        labels=["device", "onnx_provider"],
    )
    info.add_metric([str(device), onnx_providers(device)[0]], 1)
    memory = [
        GaugeMetricFamily(
            f"dropserve_gpu_memory_{kind}_bytes",
            f"CUDA memory {kind} by torch on the inference device.",
            labels=["device"],
        )
        for kind in ("allocated", "reserved")
    ]
    if device.type == "cuda":
        memory[0].add_metric([str(device)], torch.cuda.memory_allocated(device))
        memory[1].add_metric([str(device)], torch.cuda.memory_reserved(device))
    return [in_flight, loaded, info, *memory]
