"""Weight decay on the weights of each layer, never on biases.

`lambda_k` is the coefficient of the L2 penalty in the training objective,

    loss = mean data loss + sum_k lambda_k ||W_k||^2,

which is the MC-dropout objective of Gal & Ghahramani (2016) and Keras' `l2(lambda)` that their
experiments use. With a Gaussian prior of length-scale l on the weights and observation noise
precision tau, lambda_k = l^2 (1 - p_k) / (2 N tau), where p_k is the dropout rate in front of
layer k (input dropout for layer 0) and N the number of training rows.

Adam's coupled `weight_decay` adds `weight_decay * W` to the gradient, i.e. it is the gradient of
(weight_decay / 2) ||W||^2, so each layer's weight group gets weight_decay = 2 lambda_k. A stack of
networks (`service.training.stacked`) holds every model's layer k in one tensor, with a lambda per
model, so it adds the same 2 lambda_k W_k to the gradient itself (`stacked_decay`,
`add_decay_gradients`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from service.model import DropoutMLP

__all__ = ["add_decay_gradients", "parameter_groups", "prior_weight_decay", "stacked_decay"]


def prior_weight_decay(
    length_scale: float, tau: float, rates: Sequence[float], rows: int
) -> list[float]:
    """lambda_k = l^2 (1 - p_k) / (2 N tau) for each layer's dropout rate p_k.

    Args:
        length_scale: prior length-scale l of the weights.
        tau: prior observation noise precision.
        rates: dropout rate in front of each Linear layer (`MLPConfig.rates`).
        rows: N, the number of training rows.
    """
    return [length_scale**2 * (1.0 - rate) / (2.0 * rows * tau) for rate in rates]


def parameter_groups(network: DropoutMLP, decays: Sequence[float]) -> list[dict[str, Any]]:
    """Adam parameter groups: one per layer's weight with 2 lambda_k, one for all biases with 0."""
    layers = network.linears
    if len(decays) != len(layers):
        raise ValueError(f"expected {len(layers)} weight decays, one per layer, got {len(decays)}")
    groups: list[dict[str, Any]] = [
        {"params": [layer.weight], "weight_decay": 2.0 * decay}
        for layer, decay in zip(layers, decays, strict=True)
    ]
    groups.append({"params": [layer.bias for layer in layers], "weight_decay": 0.0})
    return groups


def stacked_decay(decays: torch.Tensor) -> list[torch.Tensor]:
    """2 lambda_k per model for each layer k, shaped (M, 1, 1) to scale that layer's stacked
    weights (M, in, out): what `parameter_groups` gives Adam, one value per model.

    Args:
        decays: lambda per model and layer, (M, layers).
    """
    return [2.0 * decays[:, layer, None, None] for layer in range(decays.shape[1])]


def add_decay_gradients(weights: Sequence[torch.Tensor], coefficients: list[torch.Tensor]) -> None:
    """Add the coupled weight decay, 2 lambda_k W_k (`stacked_decay`), to each stacked weight's
    gradient in place, after `backward` and before the optimizer's step."""
    with torch.no_grad():
        for weight, coefficient in zip(weights, coefficients, strict=True):
            if weight.grad is not None:
                weight.grad.addcmul_(weight, coefficient)
