"""The served network, prepared for the Monte-Carlo forward (`service.model.mc.mc_forward`).

What preparation does for speed (measured on a 2-core CPU; see bench/suites/engine.py):
- the weights are copied once, transposed to (in, out), for `torch.addmm`;
- the inverted-dropout scale 1/(1-p) is folded into the next layer's weights once, at load, so
  the masks (counter-based streams hashed in bulk, service/engines/masks.py) stay 0/1;
- the standardisation can be folded in too (`fold_standardisation`), and the weights cast to
  bf16 (`cast_network`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from service.model import DropoutMLP
from service.model.mc import AffineLayers

__all__ = [
    "PreparedNetwork",
    "cast_network",
    "fold_standardisation",
    "prepare_network",
]


@dataclass(frozen=True)
class PreparedNetwork(AffineLayers):
    """Affine layers as (in, out) matrices with dropout scaling folded in, on one device.

    With `raw_units` the standardisation is folded in too (see `fold_standardisation`): the
    first layer takes raw features and a regression's last one gives original units."""

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
