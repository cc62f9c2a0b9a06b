"""Monte-Carlo dropout in PyTorch: T stochastic passes batched into chunked forwards."""

from __future__ import annotations

import itertools
import time

import numpy as np
import numpy.typing as npt
import torch

from service.bundle import Bundle
from service.engines.cuda_graphs import Capture, GraphCache
from service.engines.masks import SegmentMasks
from service.engines.mc_kernel import (
    PreparedNetwork,
    cast_network,
    fold_standardisation,
    prepare_network,
)
from service.engines.precision import Precision, matmul_precision
from service.errors import RequestTimeoutError
from service.model.mc import mc_forward

__all__ = ["MCDropoutEngine"]


class MCDropoutEngine:
    """Draws T stochastic passes of a bundle's network on one device.

    Passes are stacked into (t * rows, features) tensors; the chunk size t is bounded so that
    t * rows * widest_layer stays under `chunk_elements`, which caps memory for any T. With a
    `graph_capture` (CUDA graphs), requests small enough to run in one chunk replay a captured
    forward instead of launching each kernel.
    """

    def __init__(
        self,
        bundle: Bundle,
        device: torch.device,
        chunk_elements: int,
        *,
        graph_capture: Capture | None = None,
    ) -> None:
        self._bundle = bundle
        self.device = device
        self._chunk_elements = chunk_elements
        manifest = bundle.manifest
        config = manifest.mlp_config()
        widths = [config.n_features, *config.hidden, config.n_outputs]
        self._widest = max(widths)
        self._outputs = config.n_outputs
        self.largest_layer_macs = max(a * b for a, b in itertools.pairwise(widths))
        self._classification = config.task == "classification"
        scaler = manifest.standardizer()
        self._x_mean = torch.tensor(scaler.feature_mean, dtype=torch.float32)
        self._x_std = torch.tensor(scaler.feature_std, dtype=torch.float32)
        self._y_mean = torch.tensor(scaler.target_mean or (), dtype=torch.float32)
        self._y_std = torch.tensor(scaler.target_std or (), dtype=torch.float32)
        self._network: PreparedNetwork | None = None  # standardisation outside (tf32, bf16)
        self._fp32: PreparedNetwork | None = None  # standardisation folded in where it can be
        self._bf16: PreparedNetwork | None = None
        self._graph_capture = graph_capture
        self._graphs: dict[Precision, GraphCache] = {}

    def load(self) -> None:
        self._x_mean, self._x_std = self._x_mean.to(self.device), self._x_std.to(self.device)
        self._y_mean, self._y_std = self._y_mean.to(self.device), self._y_std.to(self.device)
        network = prepare_network(self._bundle.network, self.device)
        self._network = self._fp32 = network
        if network.rates[0] == 0.0:
            regression = not self._classification
            self._fp32 = fold_standardisation(
                network,
                self._x_mean,
                self._x_std,
                self._y_mean if regression else None,
                self._y_std if regression else None,
            )

    @property
    def ready(self) -> bool:
        return self._network is not None

    def _prepared(self, precision: Precision) -> PreparedNetwork:
        network = self._network
        if network is None:
            raise RuntimeError("MCDropoutEngine.sample called before load()")
        if precision == "fp32" and self._fp32 is not None:
            return self._fp32
        if precision != "bf16":
            return network
        # Cast on first use: most deployments never ask for bf16 and need not hold the copy.
        if self._bf16 is None:
            self._bf16 = cast_network(network, torch.bfloat16)
        return self._bf16

    def _graph_cache(self, precision: Precision) -> GraphCache | None:
        # One cache per precision: tf32 and fp32 share weights but not captured kernels.
        if self._graph_capture is None:
            return None
        cache = self._graphs.get(precision)
        if cache is None:
            cache = GraphCache(self._prepared(precision), self._graph_capture)
            self._graphs[precision] = cache
        return cache

    def chunk_passes(self, rows: int) -> int:
        """How many passes go into one stacked forward for a batch of `rows`."""
        return max(1, self._chunk_elements // max(1, rows * self._widest))

    def sample(
        self,
        features: npt.NDArray[np.float64],
        samples: int,
        seed: int,
        *,
        deadline: float | None = None,
        precision: Precision = "fp32",
    ) -> torch.Tensor:
        """Run `samples` stochastic passes over raw features.

        Returns:
            CPU tensor (samples, rows, outputs): original-unit regression outputs, or softmax
            probabilities for classification.
        """
        return self.sample_segments(
            features, [(features.shape[0], seed)], samples, deadline=deadline, precision=precision
        )

    def sample_segments(
        self,
        features: npt.NDArray[np.float64],
        segments: list[tuple[int, int]],
        samples: int,
        *,
        deadline: float | None = None,
        precision: Precision = "fp32",
    ) -> torch.Tensor:
        """Passes over rows stacked from several requests, each segment (rows, seed) with its
        own masks: a segment's draws are those it would get alone (see SegmentMasks).

        `precision` is what `resolve_precision` chose; outputs are float32 whatever it is."""
        network = self._prepared(precision)
        dtype = network.weights[0].dtype
        masks = SegmentMasks(
            segments, len(network.weights), self.device, dtype, network.dropout_widths
        )
        x = torch.as_tensor(features, dtype=torch.float32).to(self.device)
        if not network.raw_units:
            x = ((x - self._x_mean) / self._x_std).to(dtype)
        step = self.chunk_passes(x.shape[0])
        with torch.inference_mode(), matmul_precision(self.device, precision):
            graphs = self._graph_cache(precision) if samples <= step else None
            replayed = None if graphs is None else graphs.run(x, samples, masks)
            if replayed is not None:
                return self._finish(replayed, network).cpu()
            # Each chunk writes into one output allocated up front. Kept as a list of chunk
            # outputs to concatenate, every small long-lived output would land above the
            # chunk's freed temporaries and glibc's heap would grow by a chunk's working set
            # per chunk: T=100,000 on the large model peaked 204-236 MB above its start that
            # way, 80-100 MB this way (tests/integration/test_mc_memory.py holds the bound).
            draws = torch.empty(
                (samples, x.shape[0], self._outputs), dtype=torch.float32, device=self.device
            )
            for start in range(0, samples, step):
                if deadline is not None and time.monotonic() > deadline:
                    raise RequestTimeoutError(
                        f"Monte-Carlo dropout stopped after {start} of {samples} passes: the "
                        "request timeout passed; ask for fewer samples or rows"
                    )
                passes = min(step, samples - start)
                out = mc_forward(network, x, passes, masks)
                draws[start : start + passes] = self._finish(out, network)
        return draws.cpu()

    def _finish(self, out: torch.Tensor, network: PreparedNetwork) -> torch.Tensor:
        """Raw network outputs -> probabilities, or regression outputs in original units."""
        out = out.float()
        if self._classification:
            return torch.softmax(out, dim=-1)
        if network.raw_units:
            return out
        return out * self._y_std + self._y_mean
