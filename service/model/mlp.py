"""The dropout MLP: a config dataclass plus a small `nn.Module`.

Layout: x -> Dropout(p_in) -> Linear -> act -> Dropout(p_1) -> Linear -> act -> ... -> Linear.

Two dropout styles:
- ``inverted`` (PyTorch's `nn.Dropout`): kept units are scaled by 1/(1-p) while stochastic, so the
  deterministic pass is the identity.
- ``classic`` (Srivastava et al. 2014): kept units are not rescaled while stochastic; the
  deterministic pass multiplies each unit by its keep probability 1-p (the weight-scaling rule).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any, Literal

import torch
from torch import nn

from service.model.mc import AffineLayers, MaskFn, mc_forward

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "DropoutMLP",
    "DropoutStyle",
    "MLPConfig",
    "Task",
    "dropout",
]

Task = Literal["regression", "classification"]
DropoutStyle = Literal["inverted", "classic"]
Activation = Literal["relu", "tanh", "gelu", "sigmoid"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}


@dataclass(frozen=True)
class MLPConfig:
    """Everything needed to rebuild the network; saved in the bundle manifest beside the weights."""

    n_features: int
    n_outputs: int
    task: Task = "regression"
    hidden: tuple[int, ...] = (50,)
    dropout: tuple[float, ...] = field(default=(0.05,))
    input_dropout: float = 0.0
    style: DropoutStyle = "inverted"
    activation: Activation = "relu"

    def __post_init__(self) -> None:
        if self.n_features < 1 or self.n_outputs < 1:
            raise ValueError("an MLP needs at least one feature and one output")
        if any(width < 1 for width in self.hidden):
            raise ValueError(f"hidden layer widths must be positive, got {list(self.hidden)}")
        if len(self.dropout) != len(self.hidden):
            raise ValueError(
                f"expected one dropout rate per hidden layer ({len(self.hidden)}), "
                f"got {len(self.dropout)}: {list(self.dropout)}"
            )
        for rate in (*self.dropout, self.input_dropout):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"dropout rates must lie in [0, 1), got {rate}")
        if self.task == "classification" and self.n_outputs < 2:
            raise ValueError("classification needs at least two classes")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; use one of {list(ACTIVATIONS)}"
            )

    @property
    def rates(self) -> tuple[float, ...]:
        """Dropout rate in front of each Linear layer (input dropout first)."""
        return (self.input_dropout, *self.dropout)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        data["dropout"] = list(self.dropout)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MLPConfig:
        return cls(**{**data, "hidden": tuple(data["hidden"]), "dropout": tuple(data["dropout"])})


def dropout(
    x: torch.Tensor,
    p: float,
    style: DropoutStyle,
    *,
    stochastic: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Apply one dropout layer: a fresh Bernoulli mask per element when stochastic, else scaling."""
    if p == 0.0:
        return x
    keep = 1.0 - p
    if not stochastic:
        return x if style == "inverted" else x * keep
    mask = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) < keep
    scale = 1.0 / keep if style == "inverted" else 1.0
    return torch.where(mask, x * scale, torch.zeros((), dtype=x.dtype, device=x.device))


class DropoutMLP(nn.Module):
    """MLP over standardised features; outputs standardised targets or class logits."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.n_features, *config.hidden, config.n_outputs]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(widths))
        self.activation = ACTIVATIONS[config.activation]()

    @property
    def linears(self) -> list[nn.Linear]:
        """The affine layers, typed (ModuleList items are plain Modules to the type checker)."""
        return [layer for layer in self.layers if isinstance(layer, nn.Linear)]

    def forward(
        self,
        x: torch.Tensor,
        *,
        stochastic: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Run the network.

        Args:
            x: standardised features, shape (rows, n_features).
            stochastic: draw dropout masks (MC dropout); defaults to `self.training`.
            generator: random source for the masks, for reproducible MC passes.

        Returns:
            Standardised regression outputs or class logits, shape (rows, n_outputs).
        """
        stochastic = self.training if stochastic is None else stochastic
        style = self.config.style
        last = len(self.layers) - 1
        for index, (layer, rate) in enumerate(zip(self.linears, self.config.rates, strict=True)):
            x = layer(dropout(x, rate, style, stochastic=stochastic, generator=generator))
            if index < last:
                x = self.activation(x)
        return x

    def mc_forward(
        self, x: torch.Tensor, passes: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """`passes` stochastic passes of the same rows, batched into one forward (`mc_forward`).

        Each pass and each row draws its own masks, as `dropout` draws them, from `generator`.

        Returns:
            Tensor of shape (passes, rows, n_outputs).
        """
        linears = self.linears
        layers = AffineLayers(
            [layer.weight.t() for layer in linears],
            [layer.bias for layer in linears],
            list(self.config.rates),
            self.activation,
        )
        masks = _dropout_masks(self.config.style, generator, x.dtype, x.device)
        return mc_forward(layers, x, passes, masks)


def _dropout_masks(
    style: DropoutStyle,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device,
) -> MaskFn:
    """Masks as `dropout` draws them, holding the style's scale for a kept unit (1/(1-p) when
    inverted, 1 when classic) and 0 for a dropped one, so `x * mask` is `dropout`'s output."""

    def draw(layer: int, shape: tuple[int, ...], rate: float) -> torch.Tensor:
        keep = 1.0 - rate
        kept = torch.rand(shape, generator=generator, device=device, dtype=dtype) < keep
        scale = 1.0 / keep if style == "inverted" else 1.0
        return kept.to(dtype) * scale

    return draw
