"""Fold test-time dropout scaling and standardisation into plain affine layers.

The deterministic network is x_raw -> affine -> act -> ... -> affine. For layer k with dropout rate
p_k in front of it (input dropout for k = 0):
- classic style multiplies the incoming units by the keep probability 1-p_k, i.e.
  W_k <- W_k (1-p_k); inverted style is the identity at test time;
- layer 0 absorbs the feature z-score: W_0 <- W_0 / sd_x, b_0 <- b_0 - W_0 mu_x;
- for regression the last layer absorbs the target de-standardisation:
  W <- sd_y W, b <- sd_y b + mu_y.
Work is done in float64 so the folding itself adds no error beyond the final cast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.model import DropoutMLP, Standardizer

__all__ = ["AffineLayer", "fold_network"]

Float64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class AffineLayer:
    """y = x @ weight.T + bias, weight of shape (out, in)."""

    weight: Float64
    bias: Float64


def fold_network(network: DropoutMLP, standardizer: Standardizer) -> list[AffineLayer]:
    """The eval-mode network as affine layers over raw features and original-unit outputs."""
    config = network.config
    layers: list[AffineLayer] = []
    for index, (linear, rate) in enumerate(zip(network.linears, config.rates, strict=True)):
        weight = linear.weight.detach().cpu().double().numpy().copy()
        bias = linear.bias.detach().cpu().double().numpy().copy()
        if config.style == "classic":
            weight *= 1.0 - rate
        if index == 0:
            mean = np.asarray(standardizer.feature_mean, dtype=np.float64)
            std = np.asarray(standardizer.feature_std, dtype=np.float64)
            weight = weight / std
            bias = bias - weight @ mean
        layers.append(AffineLayer(weight, bias))
    if config.task == "regression":
        if standardizer.target_mean is None or standardizer.target_std is None:
            raise ValueError("a regression network needs target statistics to fold")
        y_mean = np.asarray(standardizer.target_mean, dtype=np.float64)
        y_std = np.asarray(standardizer.target_std, dtype=np.float64)
        last = layers[-1]
        layers[-1] = AffineLayer(last.weight * y_std[:, None], last.bias * y_std + y_mean)
    return layers
