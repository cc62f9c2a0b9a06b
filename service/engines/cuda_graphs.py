"""CUDA graphs for small Monte-Carlo requests.

A small request on a GPU is a few dozen kernel launches of a few microseconds of work each, so
launch overhead is most of its time; replaying a captured graph launches them all at once. A
graph has fixed shapes and addresses, so each (precision, row bucket, passes) gets its own: rows
are padded up to the next power of two, the request's rows and masks are copied into the graph's
static buffers, and only the real rows of the output are read back. The masks are computed
outside the graph from the request's own counter-based streams (service.engines.masks), so a seed
gives the same masks with and without graphs.

`capture` is injectable: on CUDA it is `cuda_capture`; the tests drive the same cache on the
CPU with a capture that simply re-runs the forward, which checks the padding, buffers and
masks without a GPU.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from service.engines.mc_kernel import PreparedNetwork
from service.model.mc import MaskFn, mc_forward

__all__ = ["Capture", "GraphCache", "Replayable", "cuda_capture"]


class Replayable(Protocol):
    def replay(self) -> None: ...


# capture(forward) -> (graph, the static output tensor forward() wrote during capture)
Capture = Callable[[Callable[[], torch.Tensor]], tuple[Replayable, torch.Tensor]]


def cuda_capture(forward: Callable[[], torch.Tensor], pool: Any = None) -> tuple[Any, torch.Tensor]:
    """Capture `forward` into a CUDA graph, after warm-up runs on a side stream (cuBLAS sets up
    its workspace on first use, which must not happen inside a capture)."""
    stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            forward()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    # thread_local: other threads may use the GPU while this one captures.
    with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
        out = forward()
    return graph, out


@dataclass
class _Entry:
    x: torch.Tensor  # (bucket, features): the rows, padded
    masks: dict[int, torch.Tensor]  # layer -> (passes, bucket, width) keep masks
    graph: Replayable
    out: torch.Tensor  # (passes, bucket, outputs)


class GraphCache:
    """Captured forwards of one prepared network, least recently used dropped beyond `size`."""

    def __init__(
        self,
        network: PreparedNetwork,
        capture: Capture,
        *,
        max_rows: int = 64,
        max_elements: int = 1 << 22,
        size: int = 32,
    ) -> None:
        self._network = network
        self._capture = capture
        self._max_rows = max_rows
        self._max_elements = max_elements
        self._size = size
        self._widest = max(w.shape[0] for w in network.weights)
        self._entries: OrderedDict[tuple[int, int], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.captures = 0

    def bucket(self, rows: int, passes: int) -> int | None:
        """The padded row count a request runs at, or None when it is too big for a graph."""
        if rows < 1 or rows > self._max_rows:
            return None
        padded = 1 << (rows - 1).bit_length()
        if passes * padded * self._widest > self._max_elements:
            return None
        return padded

    def run(self, x: torch.Tensor, passes: int, masks: MaskFn) -> torch.Tensor | None:
        """`mc_forward(network, x, passes, masks)` by graph replay; None when no graph fits."""
        rows = x.shape[0]
        bucket = self.bucket(rows, passes)
        if bucket is None:
            return None
        with self._lock:
            entry = self._entry(bucket, passes, x)
            entry.x[:rows].copy_(x)
            for layer, static in entry.masks.items():
                width = static.shape[-1]
                drawn = masks(layer, (passes * rows, width), self._network.rates[layer])
                static[:, :rows].copy_(drawn.view(passes, rows, width))
            entry.graph.replay()
            return entry.out[:, :rows].clone()

    def _entry(self, bucket: int, passes: int, like: torch.Tensor) -> _Entry:
        key = (bucket, passes)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry
        network = self._network
        x = torch.zeros((bucket, like.shape[1]), dtype=like.dtype, device=like.device)
        masks = {
            layer: torch.ones(
                (passes, bucket, weight.shape[0]), dtype=weight.dtype, device=like.device
            )
            for layer, (weight, rate) in enumerate(zip(network.weights, network.rates, strict=True))
            if rate > 0.0
        }

        def static_masks(layer: int, shape: tuple[int, ...], rate: float) -> torch.Tensor:
            return masks[layer].view(shape)

        graph, out = self._capture(lambda: mc_forward(network, x, passes, static_masks))
        self.captures += 1
        entry = _Entry(x=x, masks=masks, graph=graph, out=out)
        self._entries[key] = entry
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return entry
