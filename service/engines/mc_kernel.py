"""The Monte-Carlo dropout forward, shaped for throughput.

What makes it fast (measured on a 2-core CPU; see bench/engine.py):
- all T passes of a chunk run as one stacked forward of (t * rows) rows;
- without input dropout the first affine layer and its activation are the same for every pass,
  so they are computed once for the `rows` and only then expanded to t copies;
- masks are drawn in bulk as random 64-bit words split into four 16-bit lanes, each compared
  with a threshold: about 2x cheaper than `torch.rand` or `bernoulli_` per element, the cost
  that dominates on the CPU. The drop probability is thereby quantised to round(p * 65536) / 65536
  (0.05 becomes 0.0500031);
- the inverted-dropout scale 1/(1-p) is folded into the next layer's weights once, at load.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from service.model import DropoutMLP

__all__ = [
    "LANE_LEVELS",
    "MaskFn",
    "PreparedNetwork",
    "SegmentMasks",
    "cast_network",
    "draw_keep_mask",
    "mc_forward",
    "prepare_network",
]

LANE_LEVELS = 1 << 16
_WORD_LOW, _WORD_HIGH = -(1 << 63), (1 << 63) - 1

# (layer index, shape (passes * rows, width), rate) -> boolean keep mask of that shape
MaskFn = Callable[[int, tuple[int, ...], float], torch.Tensor]


@dataclass(frozen=True)
class PreparedNetwork:
    """Affine layers as (in, out) matrices with dropout scaling folded in, on one device."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    rates: list[float]  # dropout rate in front of each affine layer (input dropout first)
    activation: nn.Module


def prepare_network(network: DropoutMLP, device: torch.device) -> PreparedNetwork:
    """Copy the weights to `device`, transposed, with 1/(1-p) folded in for inverted dropout."""
    config = network.config
    weights, biases = [], []
    for linear, rate in zip(network.linears, config.rates, strict=True):
        weight = linear.weight.detach().to(device=device, dtype=torch.float32).t()
        if config.style == "inverted" and rate > 0:
            weight = weight / (1.0 - rate)
        weights.append(weight.contiguous())
        biases.append(linear.bias.detach().to(device=device, dtype=torch.float32).clone())
    return PreparedNetwork(weights, biases, list(config.rates), network.activation)


def cast_network(net: PreparedNetwork, dtype: torch.dtype) -> PreparedNetwork:
    """The same network with its weights in `dtype` (bf16 for the reduced-precision forward)."""
    return PreparedNetwork(
        [w.to(dtype) for w in net.weights],
        [b.to(dtype) for b in net.biases],
        net.rates,
        net.activation,
    )


def draw_keep_mask(
    shape: tuple[int, ...], rate: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """A boolean keep mask with P(keep) = 1 - round(rate * 65536) / 65536, one lane per element."""
    count = math.prod(shape)
    return _keep(_random_lanes(count, generator, device)[:count].view(shape), rate)


def _random_lanes(count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """At least `count` uniform int16 lanes (whole 64-bit words, each split into four lanes)."""
    words = torch.randint(
        _WORD_LOW,
        _WORD_HIGH,
        ((count + 3) // 4,),
        generator=generator,
        dtype=torch.int64,
        device=device,
    )
    return words.view(torch.int16)


def _keep(lanes: torch.Tensor, rate: float) -> torch.Tensor:
    # int16 lanes are uniform on [-32768, 32767]; the lowest round(rate * 65536) levels drop.
    return lanes >= round(rate * LANE_LEVELS) - LANE_LEVELS // 2


class _LaneStream:
    """One generator's lanes as a stream: lanes left over from a word are used by the next draw,
    so the lanes a request sees do not depend on how its passes are split into chunks."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self._generator = torch.Generator(device=device)
        self._generator.manual_seed(seed)
        self._device = device
        self._left = torch.empty(0, dtype=torch.int16, device=device)

    def take(self, count: int) -> torch.Tensor:
        fresh = max(0, count - self._left.numel())
        if not fresh:
            lanes = self._left
        elif self._left.numel():
            lanes = torch.cat([self._left, _random_lanes(fresh, self._generator, self._device)])
        else:
            lanes = _random_lanes(fresh, self._generator, self._device)
        lanes, self._left = lanes[:count], lanes[count:]
        return lanes


class SegmentMasks:
    """Masks for a stack of row segments (one per request), each with its own seed.

    Every (segment, layer) pair draws from its own generator, in pass order. So a segment's
    masks depend only on its seed, not on the other segments stacked with it nor on how the
    passes are chunked: a request gets the same masks alone, batched, or chunked differently.
    """

    def __init__(self, segments: list[tuple[int, int]], layers: int, device: torch.device):
        """`segments` are (rows, seed) pairs in stacking order; `layers` affine layers."""
        self._rows = [rows for rows, _ in segments]
        # Distinct, reproducible streams per layer; 2**61 - 1 is prime, so layers never collide.
        self._streams = [
            [
                _LaneStream((seed * 1_000_003 + layer) % (2**61 - 1), device)
                for layer in range(layers)
            ]
            for _, seed in segments
        ]

    def __call__(self, layer: int, shape: tuple[int, ...], rate: float) -> torch.Tensor:
        total = sum(self._rows)
        passes, width = shape[0] // total, shape[1]
        parts = [
            _keep(streams[layer].take(passes * rows * width), rate).view(passes, rows, width)
            for rows, streams in zip(self._rows, self._streams, strict=True)
        ]
        mask = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return mask.reshape(shape)


def mc_forward(net: PreparedNetwork, x: torch.Tensor, passes: int, masks: MaskFn) -> torch.Tensor:
    """`passes` stochastic passes over standardised rows `x`; returns (passes, rows, outputs).

    `masks(layer, shape, rate)` supplies the keep masks (SegmentMasks when serving; tests share
    masks with a reference implementation through it).
    """
    rows = x.shape[0]
    weights, biases, rates = net.weights, net.biases, net.rates
    last = len(weights) - 1
    if rates[0] == 0.0:
        h = torch.addmm(biases[0], x, weights[0])
        if last > 0:
            h = net.activation(h)
        h = h.unsqueeze(0).expand(passes, rows, -1).reshape(passes * rows, -1)
        start = 1
    else:
        h = x.unsqueeze(0).expand(passes, rows, -1).reshape(passes * rows, -1)
        start = 0
    activate = _IN_PLACE.get(type(net.activation), net.activation)
    for index in range(start, last + 1):
        rate = rates[index]
        if rate > 0.0:
            mask = masks(index, tuple(h.shape), rate)
            # In place only on a tensor this loop made: the first masked h can be a view of
            # the caller's `x`, or an expanded view (one row) whose elements share memory.
            h = h * mask if index == start else h.mul_(mask)
        h = torch.addmm(biases[index], h, weights[index])
        if index < last:
            h = activate(h)
    return h.reshape(passes, rows, -1)


# Activations applied in place on the fresh output of addmm: one allocation less per layer.
_IN_PLACE: dict[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]] = {
    nn.ReLU: torch.relu_,
    nn.Tanh: torch.tanh_,
    nn.Sigmoid: torch.sigmoid_,
}
