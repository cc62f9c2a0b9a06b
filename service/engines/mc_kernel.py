"""The Monte-Carlo dropout forward, shaped for throughput.

What makes it fast (measured on a 2-core CPU; see bench/engine.py):
- all T passes of a chunk run as one stacked forward of (t * rows) rows;
- without input dropout the first affine layer and its activation are the same for every pass,
  so they are computed once for the `rows` and only then expanded to t copies;
- masks come from counter-based streams hashed in bulk (service/engines/masks.py);
- the inverted-dropout scale 1/(1-p) is folded into the next layer's weights once, at load.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from service.model import DropoutMLP

__all__ = [
    "MaskFn",
    "PreparedNetwork",
    "cast_network",
    "fold_standardisation",
    "mc_forward",
    "prepare_network",
]

# (layer index, shape (passes * rows, width), rate) -> keep mask of that shape: bool, or 0/1 in
# any dtype the activations can be multiplied by
MaskFn = Callable[[int, tuple[int, ...], float], torch.Tensor]


@dataclass(frozen=True)
class PreparedNetwork:
    """Affine layers as (in, out) matrices with dropout scaling folded in, on one device.

    With `raw_units` the standardisation is folded in too (see `fold_standardisation`): the
    first layer takes raw features and a regression's last one gives original units."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    rates: list[float]  # dropout rate in front of each affine layer (input dropout first)
    activation: nn.Module
    raw_units: bool = False

    @functools.cached_property
    def dropout_widths(self) -> dict[int, int]:
        """Input width of each layer with dropout in front of it."""
        return {
            layer: weight.shape[0]
            for layer, (weight, rate) in enumerate(zip(self.weights, self.rates, strict=True))
            if rate > 0.0
        }


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


def fold_standardisation(
    net: PreparedNetwork,
    x_mean: torch.Tensor,
    x_std: torch.Tensor,
    y_mean: torch.Tensor | None,
    y_std: torch.Tensor | None,
) -> PreparedNetwork:
    """`net` taking raw features, and for regression (`y_*` given) giving original units: the
    feature scaling goes into the first layer and the target scaling into the last, as in the
    ONNX export. Four small operations fewer per request, which is a tenth of a one-row T=100
    request on the small model. Only without input dropout (the mask multiplies standardised
    features) and only in fp32: in bf16 or tf32 the raw features' magnitude would cost the
    first layer's products their precision."""
    if net.rates[0] > 0.0:
        raise ValueError("standardisation cannot be folded in front of input dropout")
    weights, biases = list(net.weights), list(net.biases)
    weights[0] = (weights[0] / x_std[:, None]).contiguous()
    biases[0] = biases[0] - (x_mean / x_std) @ net.weights[0]
    if y_mean is not None and y_std is not None:
        biases[-1] = biases[-1] * y_std + y_mean
        weights[-1] = (weights[-1] * y_std[None, :]).contiguous()
    return PreparedNetwork(weights, biases, net.rates, net.activation, raw_units=True)


def cast_network(net: PreparedNetwork, dtype: torch.dtype) -> PreparedNetwork:
    """The same network with its weights in `dtype` (bf16 for the reduced-precision forward)."""
    return PreparedNetwork(
        [w.to(dtype) for w in net.weights],
        [b.to(dtype) for b in net.biases],
        net.rates,
        net.activation,
        net.raw_units,
    )


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
