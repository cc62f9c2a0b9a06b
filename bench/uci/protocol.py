"""The protocol of Gal & Ghahramani's UCI benchmark for a group of splits, vectorised.

Per split: the last 20 % of the train indices is a validation set; every (dropout p, prior tau)
of the grid is trained on the other 80 %, and tau is then fitted continuously on the validation
rows (as `dropserve train` does) rather than taken from the grid. The candidate with the best
validation log-likelihood is retrained on the whole train split and scored on the test rows with
T stochastic passes of `DropoutMLP.mc_forward`, which runs dropserve's one MC forward
(`service.model.mc`) with masks from a seeded torch generator.

Every grid candidate of every split in the group is one model of one `Stack`, trained by the
trainer's stacked mode (`service.training.stacked`); so is every final model. The prior tau of the
grid only sets the weight decay l^2 (1 - p) / (2 N tau) (`service.training.decay`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bench.uci.data import UCIDataset
from service.model import DropoutMLP, MLPConfig, Standardizer
from service.scoring import mixture_log_likelihood, rmse
from service.training import (
    Stack,
    fit_stacked,
    fit_tau_stacked,
    mc_log_likelihood_stacked,
    prior_weight_decay,
)

__all__ = ["ProtocolResult", "ProtocolSettings", "SplitResult", "run_splits"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProtocolSettings:
    """How one run follows (or, with fewer epochs or passes, shortens) the protocol."""

    epochs: int = 4000
    batch_size: int = 128
    learning_rate: float = 1e-3
    length_scale: float = 1e-2
    validation_fraction: float = 0.2
    validation_samples: int = 1000
    test_samples: int = 10_000
    tau_scales: tuple[float, ...] = (1.0,)
    seed: int = 0
    chunk_elements: int = 1 << 24
    progress: bool = False
    # Also pick by the validation LL at the grid's own tau and score that pick with it, the
    # published protocol exactly. Its final networks share the final stack, so turning it on
    # changes the random streams (not the statistics) of the main results.
    protocol_selection: bool = False


@dataclass(frozen=True)
class _Choice:
    """The grid's pick for one split: dropout rate, prior tau, fitted tau, validation LL."""

    rate: float
    prior: float
    tau: float
    validation_ll: float


@dataclass(frozen=True)
class ProtocolResult:
    """Test scores of the published protocol's pick: best validation LL at the grid tau."""

    rmse: float
    log_likelihood: float
    dropout: float
    prior_tau: float


@dataclass(frozen=True)
class SplitResult:
    """Test scores of one split (original units) and what the grid chose.

    `log_likelihood` uses the tau fitted on the validation rows; `log_likelihood_grid_tau` scores
    the same network with the selected grid tau instead. `protocol` holds the scores of the
    published protocol's own pick when `ProtocolSettings.protocol_selection` is on.
    """

    split: int
    rmse: float
    log_likelihood: float
    log_likelihood_grid_tau: float
    rmse_deterministic: float
    dropout: float
    prior_tau: float
    tau: float
    validation_log_likelihood: float
    protocol: ProtocolResult | None = None


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def _network(n_features: int, hidden: int, rate: float, seed: int) -> DropoutMLP:
    config = MLPConfig(
        n_features=n_features, n_outputs=1, hidden=(hidden,), dropout=(rate,), input_dropout=rate
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DropoutMLP(config)


@dataclass(frozen=True)
class _Rows:
    """Standardised inputs and targets of one split's training rows, and its standardizer."""

    x: torch.Tensor
    y: torch.Tensor
    scaler: Standardizer
    y_mean: float
    y_std: float


def _rows(dataset: UCIDataset, index: np.ndarray, device: torch.device) -> _Rows:
    x, y = dataset.x[index], dataset.y[index, None]
    scaler = Standardizer.fit(x, y)
    return _Rows(
        torch.as_tensor(scaler.features(x), dtype=torch.float32, device=device),
        torch.as_tensor(scaler.targets(y), dtype=torch.float32, device=device),
        scaler,
        float(np.asarray(scaler.target_mean)[0]),
        float(np.asarray(scaler.target_std)[0]),
    )


def _features(dataset: UCIDataset, index: np.ndarray, scaler: Standardizer) -> torch.Tensor:
    return torch.as_tensor(scaler.features(dataset.x[index]), dtype=torch.float32)


def _grid(dataset: UCIDataset, settings: ProtocolSettings) -> list[tuple[float, float]]:
    taus = sorted({tau * scale for tau in dataset.tau_values for scale in settings.tau_scales})
    return [(rate, tau) for rate in dataset.dropout_rates for tau in taus]


def _select(
    dataset: UCIDataset, splits: Sequence[int], settings: ProtocolSettings, device: torch.device
) -> tuple[list[_Choice], list[_Choice]]:
    """Per split, the grid candidate with the best validation LL with tau fitted per candidate,
    and the one with the best validation LL at its own grid tau (the published protocol's)."""
    grid = _grid(dataset, settings)
    networks, decays, fits, x_val, y_val, shift, scale = [], [], [], [], [], [], []
    for split in splits:
        train = dataset.splits[split][0]
        cut = int((1.0 - settings.validation_fraction) * train.size)
        rows, validation = _rows(dataset, train[:cut], device), train[cut:]
        fits.append(rows)
        for c, (rate, tau) in enumerate(grid):
            network = _network(
                dataset.x.shape[1], dataset.hidden, rate, _seed(settings.seed, split, c)
            )
            networks.append(network)
            decays.append(prior_weight_decay(settings.length_scale, tau, network.config.rates, cut))
        x_val.append(_features(dataset, validation, rows.scaler))
        y_val.append(torch.as_tensor(dataset.y[validation]))
        shift.append(rows.y_mean)
        scale.append(rows.y_std)
    stack = Stack.from_networks(networks, device)
    size = len(grid)  # candidates of split i are models i * size ... (i + 1) * size - 1

    def per_model(values: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(values).to(device).repeat_interleave(size, dim=0)

    fit_stacked(
        stack,
        per_model([rows.x for rows in fits]),
        per_model([rows.y for rows in fits]),
        torch.tensor(decays, device=device),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        seed=_seed(settings.seed, splits[0], 1),
        progress=settings.progress,
        label=f"{dataset.name} grid",
    )
    generator = torch.Generator(device=device).manual_seed(_seed(settings.seed, splits[0], 2))
    scaled = stack.mc_passes(
        per_model(x_val), settings.validation_samples, generator, settings.chunk_elements
    )
    scale_m, shift_m = (
        torch.tensor(v, dtype=torch.float64).repeat_interleave(size).to(device)[:, None, None]
        for v in (scale, shift)
    )
    samples = scaled.double() * scale_m + shift_m
    targets = per_model(y_val)
    taus, values = fit_tau_stacked(targets, samples)
    priors = torch.tensor([prior for _, prior in grid] * len(splits), device=device)
    at_prior = mc_log_likelihood_stacked(targets, samples, priors)
    choices, protocol = [], []
    for i in range(len(splits)):
        block = slice(i * size, (i + 1) * size)
        best, best_at_prior = int(values[block].argmax()), int(at_prior[block].argmax())
        rate, prior = grid[best]
        model = i * size + best
        choices.append(_Choice(rate, prior, float(taus[model]), float(values[model])))
        rate, prior = grid[best_at_prior]
        value = float(at_prior[i * size + best_at_prior])
        protocol.append(_Choice(rate, prior, prior, value))
    return choices, protocol


def _test_passes(
    network: DropoutMLP, x: torch.Tensor, passes: int, seed: int, chunk_elements: int
) -> np.ndarray:
    """(T, rows) stochastic outputs, standardised, in chunks of passes that bound memory."""
    widest = max(network.config.n_features, *network.config.hidden)
    step = max(1, chunk_elements // max(1, x.shape[0] * widest))
    generator = torch.Generator(device=x.device).manual_seed(seed)
    with torch.no_grad():
        chunks = [
            network.mc_forward(x, min(step, passes - start), generator)[:, :, 0]
            for start in range(0, passes, step)
        ]
    return torch.cat(chunks).double().cpu().numpy()


def _score(
    dataset: UCIDataset,
    split: int,
    network: DropoutMLP,
    scaler: Standardizer,
    choice: _Choice,
    settings: ProtocolSettings,
    mc_seed: int,
) -> SplitResult:
    """Test RMSE and log-likelihoods of one final network, in original units."""
    test = dataset.splits[split][1]
    y = dataset.y[test]
    device = network.linears[0].weight.device
    x = _features(dataset, test, scaler).to(device)
    scaled = _test_passes(network, x, settings.test_samples, mc_seed, settings.chunk_elements)
    samples = scaler.inverse_targets(scaled[:, :, None])[:, :, 0]
    with torch.no_grad():
        plain = network(x, stochastic=False).double().cpu().numpy()
    result = SplitResult(
        split=split,
        rmse=rmse(y, samples.mean(axis=0)),
        log_likelihood=float(mixture_log_likelihood(y, samples, choice.tau).mean()),
        log_likelihood_grid_tau=float(mixture_log_likelihood(y, samples, choice.prior).mean()),
        rmse_deterministic=rmse(y, scaler.inverse_targets(plain)[:, 0]),
        dropout=choice.rate,
        prior_tau=choice.prior,
        tau=choice.tau,
        validation_log_likelihood=choice.validation_ll,
    )
    logger.info(
        "%s split %d: rmse %.4f, ll %.4f (p %g, prior tau %g, tau %.4g)",
        dataset.name,
        split,
        result.rmse,
        result.log_likelihood,
        choice.rate,
        choice.prior,
        choice.tau,
    )
    if not (math.isfinite(result.rmse) and math.isfinite(result.log_likelihood)):
        raise FloatingPointError(f"{dataset.name} split {split}: a non-finite test score")
    return result


def run_splits(
    dataset: UCIDataset, splits: Sequence[int], settings: ProtocolSettings, device: torch.device
) -> list[SplitResult]:
    """Run the protocol on `splits` of `dataset` (of equal sizes), all of them stacked together."""
    choices, protocol = _select(dataset, splits, settings, device)
    finals = [_rows(dataset, dataset.splits[split][0], device) for split in splits]
    # Final networks: dropserve's picks, then (optionally) the published protocol's.
    # (split, rows, pick, seed tag of the initial weights, seed tag of the test passes)
    picks = [(s, f, c, 10_000, 4) for s, f, c in zip(splits, finals, choices, strict=True)]
    if settings.protocol_selection:
        picks += [(s, f, c, 20_000, 5) for s, f, c in zip(splits, finals, protocol, strict=True)]
    rows, seed = finals[0].x.shape[0], settings.seed
    networks = [
        _network(dataset.x.shape[1], dataset.hidden, c.rate, _seed(seed, s, tag))
        for s, _, c, tag, _ in picks
    ]
    decays = [
        prior_weight_decay(settings.length_scale, c.prior, network.config.rates, rows)
        for network, (_, _, c, _, _) in zip(networks, picks, strict=True)
    ]
    stack = Stack.from_networks(networks, device)
    fit_stacked(
        stack,
        torch.stack([final.x for _, final, *_ in picks]),
        torch.stack([final.y for _, final, *_ in picks]),
        torch.tensor(decays, device=device),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        seed=_seed(settings.seed, splits[0], 3),
        progress=settings.progress,
        label=f"{dataset.name} final",
    )
    scores = [
        _score(dataset, s, stack.network(i).to(device), f.scaler, c, settings, _seed(seed, s, tag))
        for i, (s, f, c, _, tag) in enumerate(picks)
    ]
    results = scores[: len(splits)]
    if settings.protocol_selection:
        results = [
            dataclasses.replace(
                result,
                protocol=ProtocolResult(
                    other.rmse, other.log_likelihood_grid_tau, other.dropout, other.prior_tau
                ),
            )
            for result, other in zip(results, scores[len(splits) :], strict=True)
        ]
    return results
