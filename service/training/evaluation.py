"""Held-out metrics of a trained network, deterministic and Monte-Carlo, and the tau fit.

Regression metrics are in original units; the MC passes use the same fresh-mask-per-row-and-pass
scheme as the serving engine (`DropoutMLP.mc_forward`), seeded for reproducibility.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional

from service.model import DropoutMLP, Standardizer
from service.training.calibration import classification_calibration, regression_calibration
from service.training.tau import fit_tau

__all__ = ["Evaluation", "evaluate_classification", "evaluate_regression", "mc_outputs"]


# Bound on stacked activations per MC chunk (passes x rows x widest layer), ~16 MB of float32.
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Evaluation:
    """Metrics keyed `<prefix>_<name>` and, for regression, the fitted tau per output."""

    metrics: dict[str, float]
    tau: list[float] | None = None


def mc_outputs(network: DropoutMLP, x: torch.Tensor, passes: int, seed: int) -> torch.Tensor:
    """`passes` stochastic passes over standardised rows: shape (passes, rows, outputs)."""
    config = network.config
    widest = max(config.n_features, *config.hidden, config.n_outputs)
    step = max(1, _CHUNK_ELEMENTS // max(1, x.shape[0] * widest))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        chunks = [
            network.mc_forward(x, min(step, passes - start), generator)
            for start in range(0, passes, step)
        ]
    return torch.cat(chunks, dim=0)


def evaluate_regression(
    network: DropoutMLP,
    standardizer: Standardizer,
    features: npt.NDArray[np.float64],
    targets: npt.NDArray[np.float64],
    *,
    passes: int,
    seed: int,
    prefix: str,
) -> Evaluation:
    """RMSEs (deterministic, MC mean), MC NLL with fitted tau, and the served intervals' coverage.

    RMSEs pool all outputs; `nll` averages the per-output negative log-likelihoods, each with its
    own tau, which is how the serving side treats outputs (independently).
    """
    x = torch.as_tensor(standardizer.features(features), dtype=torch.float32)
    with torch.no_grad():
        scaled = network(x, stochastic=False).double().numpy()
    deterministic = standardizer.inverse_targets(scaled)
    samples = standardizer.inverse_targets(mc_outputs(network, x, passes, seed).double().numpy())
    fits = [fit_tau(targets[:, j], samples[:, :, j]) for j in range(targets.shape[1])]
    tau = [fit.tau for fit in fits]
    return Evaluation(
        metrics={
            f"{prefix}_rmse": math.sqrt(float(np.mean((targets - deterministic) ** 2))),
            f"{prefix}_mc_rmse": math.sqrt(float(np.mean((targets - samples.mean(axis=0)) ** 2))),
            f"{prefix}_nll": -float(np.mean([fit.log_likelihood for fit in fits])),
            **regression_calibration(targets, samples, tau, prefix),
        },
        tau=tau,
    )


def evaluate_classification(
    network: DropoutMLP,
    standardizer: Standardizer,
    features: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    *,
    passes: int,
    seed: int,
    prefix: str,
) -> Evaluation:
    """Accuracy, NLL and ECE (15 bins), deterministic and of the mean MC probabilities."""
    x = torch.as_tensor(standardizer.features(features), dtype=torch.float32)
    y = torch.as_tensor(labels)
    with torch.no_grad():
        logits = network(x, stochastic=False)
    log_probs = functional.log_softmax(mc_outputs(network, x, passes, seed).double(), dim=-1)
    # log of the mean probability over passes: logsumexp_t log p_t - log T
    mc_log_probs = torch.logsumexp(log_probs, dim=0) - math.log(passes)
    return Evaluation(
        metrics={
            f"{prefix}_accuracy": float((logits.argmax(dim=-1) == y).double().mean()),
            f"{prefix}_nll": float(functional.cross_entropy(logits, y)),
            f"{prefix}_mc_accuracy": float((mc_log_probs.argmax(dim=-1) == y).double().mean()),
            f"{prefix}_mc_nll": float(functional.nll_loss(mc_log_probs, y)),
            **classification_calibration(
                torch.softmax(logits.double(), dim=-1).numpy(),
                mc_log_probs.exp().numpy(),
                labels,
                prefix,
            ),
        }
    )
