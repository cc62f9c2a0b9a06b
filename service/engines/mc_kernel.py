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

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from service.model import DropoutMLP

__all__ = ["LANE_LEVELS", "PreparedNetwork", "draw_keep_mask", "mc_forward", "prepare_network"]

LANE_LEVELS = 1 << 16
_WORD_LOW, _WORD_HIGH = -(1 << 63), (1 << 63) - 1

MaskFn = Callable[[tuple[int, ...], float], torch.Tensor]


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


def draw_keep_mask(
    shape: tuple[int, ...], rate: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """A boolean keep mask with P(keep) = 1 - round(rate * 65536) / 65536, one lane per element."""
    count = 1
    for size in shape:
        count *= size
    words = torch.randint(
        _WORD_LOW,
        _WORD_HIGH,
        ((count + 3) // 4,),
        generator=generator,
        dtype=torch.int64,
        device=device,
    )
    lanes = words.view(torch.int16)[:count].view(shape)
    # int16 lanes are uniform on [-32768, 32767]; the lowest round(rate * 65536) levels drop.
    return lanes >= round(rate * LANE_LEVELS) - LANE_LEVELS // 2


def mc_forward(
    net: PreparedNetwork,
    x: torch.Tensor,
    passes: int,
    generator: torch.Generator,
    mask_fn: MaskFn | None = None,
) -> torch.Tensor:
    """`passes` stochastic passes over standardised rows `x`; returns (passes, rows, outputs).

    `mask_fn(shape, rate)` replaces the bulk-bit masks (tests use it to share masks with a
    reference implementation).
    """
    rows = x.shape[0]

    def mask(shape: tuple[int, ...], rate: float) -> torch.Tensor:
        if mask_fn is not None:
            return mask_fn(shape, rate)
        return draw_keep_mask(shape, rate, generator, x.device)

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
    for index in range(start, last + 1):
        rate = rates[index]
        if rate > 0.0:
            h = h * mask(tuple(h.shape), rate)
        h = torch.addmm(biases[index], h, weights[index])
        if index < last:
            h = net.activation(h)
    return h.reshape(passes, rows, -1)
