"""Many dropout MLPs trained at once: every weight carries a leading model dimension M.

The benchmark trains 12 grid candidates for each of 20 splits; one at a time that is 240 runs of
thousands of tiny steps, each too small to keep any processor busy. Stacked, one step is a few
batched matrix products (`torch.baddbmm`) for all of them. Nothing couples the models: each has
its own rows (its split's), dropout rate, weight decay and masks; the loss is a sum of per-model
losses, so each model's gradient is its own, and Adam updates element by element.

This is dropserve's training step (`service.training.trainer.fit`) vectorised: weights start as
`DropoutMLP` initialises them, the loss is the MSE on standardised targets, the mini-batches are
drawn by `randperm` from a generator seeded `seed` and the masks from one seeded `seed + 1`,
dropout is inverted and on the inputs too, and weight decay lambda_k ||W_k||^2 is applied to
weights only, as the gradient 2 lambda_k W_k (Adam's coupled weight decay, as
`service.training.decay` sets it). With dropout off and one model it reproduces `fit` (a test
checks this). Only torch, numpy and `service.model` are imported, so the GPU script runs on a
machine that has torch but none of the serving stack.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from service.model import DropoutMLP, MLPConfig

__all__ = ["Stack", "fit_tau_stacked", "log_likelihood_stacked", "prior_decay", "train_stacked"]

_FLOOR = 1e-300
_GRID_POINTS = 64  # the tau fit below is service.training.tau.fit_tau, batched over models
_TOLERANCE = 1e-9
_MAX_SPAN = 40.0
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


def prior_decay(length_scale: float, tau: float, rate: float, rows: int) -> float:
    """lambda = l^2 (1 - p) / (2 N tau), `service.training.decay.prior_weight_decay` for one p."""
    return length_scale**2 * (1.0 - rate) / (2.0 * rows * tau)


@dataclass
class Stack:
    """M one-output ReLU MLPs of equal shape: weights (M, in, out), biases (M, out).

    `keep` is (M, layers): the keep probability in front of each Linear layer (inputs first).
    """

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    keep: torch.Tensor
    configs: list[MLPConfig]

    @classmethod
    def from_networks(cls, networks: Sequence[DropoutMLP], device: torch.device) -> Stack:
        """Stack freshly initialised networks (inverted dropout, ReLU, same widths)."""
        configs = [network.config for network in networks]
        for config in configs:
            if config.style != "inverted" or config.activation != "relu":
                raise ValueError("stacked training supports inverted dropout with ReLU only")
        layers = len(networks[0].linears)
        weights = [
            torch.stack([n.linears[k].weight.detach().t() for n in networks]).to(device)
            for k in range(layers)
        ]
        biases = [
            torch.stack([n.linears[k].bias.detach() for n in networks]).to(device)
            for k in range(layers)
        ]
        keep = torch.tensor([[1.0 - rate for rate in c.rates] for c in configs], device=device)
        return cls(weights, biases, keep, configs)

    @property
    def models(self) -> int:
        return len(self.configs)

    def network(self, index: int) -> DropoutMLP:
        """Model `index` as a `DropoutMLP` on the CPU, eval mode."""
        network = DropoutMLP(self.configs[index])
        with torch.no_grad():
            for layer, weight, bias in zip(network.linears, self.weights, self.biases, strict=True):
                layer.weight.copy_(weight[index].t())
                layer.bias.copy_(bias[index])
        return network.eval()

    def forward(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """x (M, rows, in) -> (M, rows, out); stochastic (fresh masks) when a generator is given."""
        last = len(self.weights) - 1
        for k, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            if generator is not None:
                keep = self.keep[:, k, None, None]
                mask = torch.rand(x.shape, generator=generator, device=x.device) < keep
                x = torch.where(mask, x / keep, torch.zeros((), device=x.device))
            x = torch.baddbmm(bias.unsqueeze(1), x, weight)
            if k < last:
                x = torch.relu(x)
        return x

    def mc_passes(
        self, x: torch.Tensor, passes: int, generator: torch.Generator, chunk_elements: int
    ) -> torch.Tensor:
        """`passes` stochastic passes of each model over its rows x (M, rows, in): (M, T, rows).

        Like `DropoutMLP.mc_forward`, passes are stacked along the rows with fresh masks per pass
        and row; chunks keep M * passes * rows * widest layer under `chunk_elements`.
        """
        models, rows, _ = x.shape
        widest = max(w.shape[2] for w in self.weights)
        step = max(1, chunk_elements // max(1, models * rows * widest))
        chunks = []
        with torch.no_grad():
            for start in range(0, passes, step):
                t = min(step, passes - start)
                stacked = x.unsqueeze(1).expand(models, t, rows, -1).reshape(models, t * rows, -1)
                chunks.append(self.forward(stacked, generator).reshape(models, t, rows))
        return torch.cat(chunks, dim=1)


def train_stacked(
    stack: Stack,
    x: torch.Tensor,
    y: torch.Tensor,
    decays: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    progress: bool = False,
    label: str = "train",
) -> torch.Tensor:
    """Train every model of `stack` in place on its own standardised rows.

    Args:
        stack: freshly initialised models.
        x: features (M, rows, in); y: targets (M, rows, 1). Model m trains on x[m], y[m].
        decays: lambda per model and layer, (M, layers).
        epochs, batch_size, learning_rate: as in `service.training.trainer.fit`.
        seed: seeds the batch order (shared by all models) and the masks.
        progress: show a tqdm bar per epoch on stderr.

    Returns:
        The mean training loss of each model over its last epoch, shape (M,).
    """
    device = x.device
    rows = x.shape[1]
    params = [*stack.weights, *stack.biases]
    for param in params:
        param.requires_grad_(True)
    # Fused Adam is one kernel per step on CUDA; the default (foreach) elsewhere.
    optimizer = torch.optim.Adam(
        params, lr=learning_rate, fused=True if device.type == "cuda" else None
    )
    coefficients = [2.0 * decays[:, k, None, None].to(device) for k in range(len(stack.weights))]
    shuffle = torch.Generator().manual_seed(seed)
    masks = torch.Generator(device=device).manual_seed(seed + 1)
    total = torch.zeros(stack.models, device=device)
    bar = tqdm(range(epochs), desc=label, unit="epoch", file=sys.stderr, disable=not progress)
    for _ in bar:
        order = torch.randperm(rows, generator=shuffle)
        if device.type == "cuda":  # pinned: the copy is asynchronous and the GPU queue stays full
            order = order.pin_memory()
        order = order.to(device, non_blocking=True)
        total = torch.zeros(stack.models, device=device)
        for start in range(0, rows, batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            out = stack.forward(x.index_select(1, batch), masks)
            losses = (out - y.index_select(1, batch)).square().mean(dim=(1, 2))
            losses.sum().backward()  # type: ignore[no-untyped-call]
            with torch.no_grad():
                for weight, coefficient in zip(stack.weights, coefficients, strict=True):
                    grad = weight.grad
                    if grad is not None:
                        grad.addcmul_(weight, coefficient)
            optimizer.step()
            total += losses.detach() * batch.numel()
    for param in params:
        param.requires_grad_(False)
    last = total / rows
    if not bool(torch.isfinite(last).all()):
        raise FloatingPointError(f"training diverged: last-epoch losses {last.tolist()}")
    return last


def _log_likelihood(squared: torch.Tensor, log_tau: torch.Tensor) -> torch.Tensor:
    """Mean MC log-likelihood per model: squared (M, T, rows), log_tau (M,) -> (M,)."""
    scaled = -0.5 * log_tau.exp()[:, None, None] * squared
    lse = torch.logsumexp(scaled, dim=1).mean(dim=1)
    return lse - math.log(squared.shape[1]) - 0.5 * math.log(2.0 * math.pi) + 0.5 * log_tau


def log_likelihood_stacked(
    y: torch.Tensor, samples: torch.Tensor, tau: torch.Tensor
) -> torch.Tensor:
    """Mean MC log-likelihood per model at a given tau: y (M, rows), samples (M, T, rows)."""
    squared = (samples.double() - y.double()[:, None, :]) ** 2
    return _log_likelihood(squared, tau.double().log())


def fit_tau_stacked(y: torch.Tensor, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`service.training.tau.fit_tau` for M models at once (same bracket, grid, golden section).

    Args:
        y: targets (M, rows); samples: pass outputs (M, T, rows), same units.

    Returns:
        The maximising tau (M,) and the mean log-likelihood there (M,), float64.
    """
    squared = (samples.double() - y.double()[:, None, :]) ** 2
    low = -squared.mean(dim=(1, 2)).clamp_min(_FLOOR).log()
    high = -squared.amin(dim=1).mean(dim=1).clamp_min(_FLOOR).log()
    high = torch.minimum(torch.maximum(high, low + 1e-6), low + _MAX_SPAN)
    fractions = torch.linspace(0.0, 1.0, _GRID_POINTS, dtype=torch.float64, device=y.device)
    grid = low[:, None] + (high - low)[:, None] * fractions[None, :]
    values = torch.stack([_log_likelihood(squared, grid[:, i]) for i in range(_GRID_POINTS)], 1)
    best = values.argmax(dim=1)
    rows = torch.arange(best.numel(), device=y.device)
    lo = grid[rows, (best - 1).clamp_min(0)]
    hi = grid[rows, (best + 1).clamp_max(_GRID_POINTS - 1)]
    inner_lo = hi - _INV_PHI * (hi - lo)
    inner_hi = lo + _INV_PHI * (hi - lo)
    f_lo, f_hi = _log_likelihood(squared, inner_lo), _log_likelihood(squared, inner_hi)
    while bool(((hi - lo) > _TOLERANCE).any()):
        active = (hi - lo) > _TOLERANCE
        left = active & (f_lo >= f_hi)  # the maximum lies in [lo, inner_hi]
        right = active & ~(f_lo >= f_hi)
        new_hi = torch.where(left, inner_hi, hi)
        new_lo = torch.where(right, inner_lo, lo)
        moved_lo = torch.where(left, new_hi - _INV_PHI * (new_hi - lo), inner_lo)
        moved_hi = torch.where(right, new_lo + _INV_PHI * (hi - new_lo), inner_hi)
        next_lo = torch.where(right, inner_hi, moved_lo)
        next_hi = torch.where(left, inner_lo, moved_hi)
        f_next = _log_likelihood(squared, torch.where(left, next_lo, next_hi))
        f_lo, f_hi = (
            torch.where(left, f_next, torch.where(right, f_hi, f_lo)),
            torch.where(right, f_next, torch.where(left, f_lo, f_hi)),
        )
        inner_lo, inner_hi, lo, hi = next_lo, next_hi, new_lo, new_hi
    log_tau = torch.where(f_lo >= f_hi, inner_lo, inner_hi)
    value = torch.maximum(f_lo, f_hi)
    grid_best = values[rows, best]
    use_grid = grid_best > value  # the bracket's interior lost to its own grid point
    log_tau = torch.where(use_grid, grid[rows, best], log_tau)
    return log_tau.exp(), torch.where(use_grid, grid_best, value)
