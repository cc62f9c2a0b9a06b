"""The Monte-Carlo dropout forward: T stochastic passes of affine layers as one batched forward.

dropserve has one: the served engine runs it (`service.engines.mc_kernel` prepares the layers,
`service.engines.masks` draws the masks), `DropoutMLP.mc_forward` runs it for training's tau fit
and the evaluations, and the stacked trainer (`service.training.stacked`) runs it over a grid of
networks, each tensor with a leading model dimension M.

What makes it fast (measured on a 2-core CPU; see bench/suites/engine.py):
- all T passes run as one stacked forward of (T * rows) rows, each pass and row with its own masks;
- without input dropout the first affine layer and its activation are the same for every pass,
  so they are computed once for the `rows` and only then expanded to T copies;
- activations are applied in place on the fresh output of each affine layer, and masks multiply
  in place too where the activations are the loop's own and autograd is not recording.

Where the dropout scale lives is the caller's choice: the engine folds 1/(1-p) into the next
layer's weights once, at load, and draws 0/1 masks; `DropoutMLP` and the stacked trainer draw
masks that carry the scale (0, or 1/(1-p) for inverted dropout), so their arithmetic is that of
`service.model.mlp.dropout`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["AffineLayers", "MaskFn", "mc_forward"]

# (layer index, shape (passes * rows, width), or (M, passes * rows, width) for a grid, rate)
# -> the mask multiplying the activations entering that layer, of that shape: bool, or numbers
# of any dtype the activations can be multiplied by
MaskFn = Callable[[int, tuple[int, ...], float], torch.Tensor]


@dataclass(frozen=True)
class AffineLayers:
    """Affine layers as (in, out) matrices, the dropout rate in front of each, the activation.

    For a grid of M networks each weight is (M, in, out), each bias (M, 1, out), and each rate
    the largest of the models' rates there: a layer gets masks where any model drops."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    rates: list[float]  # input dropout first
    activation: nn.Module


def mc_forward(layers: AffineLayers, x: torch.Tensor, passes: int, masks: MaskFn) -> torch.Tensor:
    """`passes` stochastic passes over the rows `x`.

    Args:
        layers: the network; for a grid, the models' layers stacked (see `AffineLayers`).
        x: rows (rows, in), in the units the first layer takes; for a grid (M, rows, in), each
            model its own rows.
        passes: T, the number of stochastic passes.
        masks: `masks(layer, shape, rate)` supplies the mask of each layer with a rate above 0
            (`SegmentMasks` when serving; tests share masks with a reference through it).

    Returns:
        The outputs, (passes, rows, outputs); for a grid (M, passes, rows, outputs).
    """
    rows = x.shape[-2]
    grid = x.dim() == 3
    weights, biases, rates = layers.weights, layers.biases, layers.rates
    affine = torch.baddbmm if grid else torch.addmm
    activation = layers.activation
    activate = _IN_PLACE.get(type(activation), activation)
    last = len(weights) - 1
    if rates[0] == 0.0:
        h = affine(biases[0], x, weights[0])
        if last > 0:
            h = activate(h)
        start = 1
    else:
        h, start = x, 0
    # The rows once per pass, pass after pass: (passes * rows, width), per model for a grid.
    if grid:
        h = h.unsqueeze(1).expand(-1, passes, -1, -1).flatten(1, 2)
    else:
        h = h.unsqueeze(0).expand(passes, rows, -1).reshape(passes * rows, -1)
    for index in range(start, last + 1):
        rate = rates[index]
        if rate > 0.0:
            mask = masks(index, tuple(h.shape), rate)
            # In place only on a tensor this loop made (the first masked h can be a view of
            # the caller's `x`, or an expanded view of one row whose elements share memory),
            # and not while autograd records (the activation's backward needs its output).
            h = h.mul_(mask) if index > start and not h.requires_grad else h * mask
        h = affine(biases[index], h, weights[index])
        if index < last:
            h = activate(h)
    return h.reshape(-1, passes, rows, h.shape[-1]) if grid else h.reshape(passes, rows, -1)


# Activations applied in place on the fresh output of addmm: one allocation less per layer.
_IN_PLACE: dict[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]] = {
    nn.ReLU: torch.relu_,
    nn.Tanh: torch.tanh_,
    nn.Sigmoid: torch.sigmoid_,
}
