"""The options of one training run, checked before the data file is even read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from service.bundle.manifest import NAME_PATTERN
from service.model import MLPConfig
from service.model.mlp import Activation, DropoutStyle, Task

__all__ = ["TrainOptions"]


@dataclass(frozen=True)
class TrainOptions:
    """Options of one training run (the `dropserve train` flags).

    Weight decay is either `weight_decay` for every layer's weights, or the MC-dropout prior form
    from `prior_length_scale` and `prior_tau` (see `service.training.decay`); never both.
    `patience` > 0 stops early on the validation loss and restores the best epoch's weights;
    0 trains exactly `epochs` epochs. `mc_samples` is T, the stochastic passes used to fit tau and
    to compute the MC validation metrics.
    """

    data: Path
    targets: tuple[str, ...]
    name: str
    task: Task = "regression"
    features: tuple[str, ...] | None = None
    hidden: tuple[int, ...] = (50,)
    dropout: tuple[float, ...] = (0.05,)
    input_dropout: float = 0.0
    style: DropoutStyle = "inverted"
    activation: Activation = "relu"
    epochs: int = 200
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    prior_length_scale: float | None = None
    prior_tau: float | None = None
    validation_fraction: float = 0.2
    patience: int = 20
    mc_samples: int = 200
    seed: int = 0
    models_dir: Path = Path("models")
    description: str = ""
    progress: bool = True

    def __post_init__(self) -> None:
        if not re.fullmatch(NAME_PATTERN, self.name):
            raise ValueError(
                f"model name {self.name!r} is not allowed: use lower-case letters, digits, "
                "'.', '_' or '-', starting with a letter or digit (at most 63 characters)"
            )
        if not self.targets:
            raise ValueError("name at least one target column")
        if self.seed < 0:
            raise ValueError(f"the seed must be 0 or more, got {self.seed}")
        if self.epochs < 1 or self.batch_size < 1 or self.mc_samples < 1:
            raise ValueError("epochs, batch size and MC samples must be at least 1")
        if not self.learning_rate > 0.0:
            raise ValueError(f"the learning rate must be positive, got {self.learning_rate}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                f"the validation fraction must lie in [0, 1), got {self.validation_fraction}"
            )
        if self.patience < 0:
            raise ValueError(f"patience must be 0 (fixed epochs) or more, got {self.patience}")
        if self.patience > 0 and self.validation_fraction == 0.0:
            raise ValueError(
                "early stopping needs a validation split: pass --patience 0 to train a fixed "
                "number of epochs, or a --validation-fraction above 0"
            )
        prior = (self.prior_length_scale, self.prior_tau)
        if (prior[0] is None) != (prior[1] is None):
            raise ValueError("the prior weight decay needs both a length-scale and a tau")
        if prior[0] is not None and self.weight_decay != 0.0:
            raise ValueError(
                "give either a weight decay or the prior length-scale and tau, not both"
            )
        if any(value is not None and not value > 0.0 for value in prior):
            raise ValueError(f"the prior length-scale and tau must be positive, got {prior}")
        if self.weight_decay < 0.0:
            raise ValueError(f"the weight decay must be 0 or more, got {self.weight_decay}")
        if len(self.dropout) not in {1, len(self.hidden)}:
            raise ValueError(
                f"give one dropout rate for all {len(self.hidden)} hidden layers or one per layer, "
                f"got {len(self.dropout)}: {list(self.dropout)}"
            )
        self.network_config(n_features=1, n_outputs=2)  # MLPConfig checks rates and widths

    @property
    def uses_prior(self) -> bool:
        return self.prior_length_scale is not None

    def network_config(self, n_features: int, n_outputs: int) -> MLPConfig:
        """The MLP for this run, with a single dropout rate repeated over the hidden layers."""
        rates = self.dropout * len(self.hidden) if len(self.dropout) == 1 else self.dropout
        return MLPConfig(
            n_features=n_features,
            n_outputs=n_outputs,
            task=self.task,
            hidden=self.hidden,
            dropout=rates,
            input_dropout=self.input_dropout,
            style=self.style,
            activation=self.activation,
        )
