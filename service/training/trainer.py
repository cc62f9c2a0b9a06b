"""The training loop: Adam on shuffled mini-batches, a fresh dropout mask per batch, early stopping.

Inputs are already standardised tensors; the loss is MSE on standardised targets (regression) or
cross-entropy on class indices (classification). The validation loss, on which early stopping
decides, is the deterministic (eval-mode) loss of the same kind.

The stacked mode, many networks trained at once (`service.training.stacked`), shares the random
streams, the epoch's mini-batches and the progress bar defined here, so a seed means the same
batch order in both.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.nn import functional
from tqdm import tqdm

from service.errors import DropserveError
from service.model import DropoutMLP
from service.training.decay import parameter_groups

__all__ = [
    "EpochRecord",
    "FitResult",
    "deterministic_algorithms",
    "epoch_batches",
    "fit",
    "loss_of",
    "progress_bar",
    "random_streams",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochRecord:
    """Mean mini-batch training loss of an epoch and the validation loss after it."""

    epoch: int
    train_loss: float
    validation_loss: float | None


@dataclass(frozen=True)
class FitResult:
    """The trained network (eval mode) and how it got there.

    `kept_epoch` (1-based) is the epoch whose weights the network holds: the best validation
    epoch with early stopping, else the last one.
    """

    network: DropoutMLP
    history: list[EpochRecord]
    kept_epoch: int

    @property
    def kept(self) -> EpochRecord:
        return self.history[self.kept_epoch - 1]


@contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Switch torch to deterministic kernels for the block, then restore what was set before."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def loss_of(network: DropoutMLP, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error (regression) or mean cross-entropy over class indices."""
    if network.config.task == "classification":
        return functional.cross_entropy(outputs, targets)
    return functional.mse_loss(outputs, targets)


def random_streams(seed: int, device: torch.device) -> tuple[torch.Generator, torch.Generator]:
    """The batch order's generator (seeded `seed`, on the CPU) and the dropout masks' (seeded
    `seed + 1`, on `device`): every trainer draws from these two, so a seed means one thing."""
    return torch.Generator().manual_seed(seed), torch.Generator(device=device).manual_seed(seed + 1)


def epoch_batches(
    rows: int, batch_size: int, shuffle: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """One epoch's mini-batches: row indices on `device`, a fresh permutation cut in order (the
    last batch may be smaller)."""
    order = torch.randperm(rows, generator=shuffle)
    if device.type == "cuda":  # pinned: the copy is asynchronous and the GPU queue stays full
        order = order.pin_memory()
    order = order.to(device, non_blocking=True)
    for start in range(0, rows, batch_size):
        yield order[start : start + batch_size]


def progress_bar(epochs: int, label: str, show: bool) -> tqdm[int]:
    """Epochs 1..`epochs`, with a tqdm bar on stderr when `show`."""
    return tqdm(range(1, epochs + 1), desc=label, unit="epoch", file=sys.stderr, disable=not show)


def _validation_loss(network: DropoutMLP, x: torch.Tensor, y: torch.Tensor) -> float:
    network.eval()
    with torch.no_grad():
        value = float(loss_of(network, network(x), y))
    network.train()
    return value


def fit(
    network: DropoutMLP,
    train: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor] | None,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    decays: Sequence[float],
    patience: int,
    seed: int,
    progress: bool = False,
) -> FitResult:
    """Train `network` in place.

    Args:
        network: a freshly initialised network.
        train: standardised features and targets of the training rows.
        validation: the same for the validation rows, or None (then patience must be 0).
        epochs: the most epochs to run (exactly this many when patience is 0).
        batch_size: rows per mini-batch; the last batch of an epoch may be smaller.
        learning_rate: Adam's step size.
        decays: lambda_k per layer (see `service.training.decay`); biases get none.
        patience: epochs without a new best validation loss before stopping; 0 never stops.
        seed: seeds the batch shuffling and the dropout masks.
        progress: show a tqdm bar on stderr with the running losses.

    Returns:
        The network in eval mode with the best validation epoch's weights when stopping early
        (patience > 0), else the last epoch's, and the per-epoch history.

    Raises:
        DropserveError: the training loss became NaN or infinite.
    """
    if patience > 0 and validation is None:
        raise ValueError("early stopping (patience > 0) needs validation rows")
    x, y = train
    rows = x.shape[0]
    shuffle, masks = random_streams(seed, x.device)
    optimizer = torch.optim.Adam(parameter_groups(network, decays), lr=learning_rate)
    history: list[EpochRecord] = []
    best_loss = float("inf")
    best_epoch = 0
    best_state: dict[str, torch.Tensor] = {}  # filled only when stopping early
    bar = progress_bar(epochs, "train", progress)
    network.train()
    with deterministic_algorithms(), bar:
        for epoch in bar:
            total = 0.0
            for batch in epoch_batches(rows, batch_size, shuffle, x.device):
                optimizer.zero_grad(set_to_none=True)
                loss = loss_of(network, network(x[batch], generator=masks), y[batch])
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                total += loss.item() * batch.numel()
            train_loss = total / rows
            if not math.isfinite(train_loss):
                raise DropserveError(
                    f"training diverged: the training loss is {train_loss} in epoch {epoch}; "
                    "lower the learning rate (--lr)"
                )
            val_loss = None if validation is None else _validation_loss(network, *validation)
            history.append(EpochRecord(epoch, train_loss, val_loss))
            if val_loss is not None and val_loss < best_loss:
                best_loss, best_epoch = val_loss, epoch
                if patience:
                    best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
            postfix = {"train": f"{train_loss:.4f}"}
            if val_loss is not None:
                postfix |= {"val": f"{val_loss:.4f}", "best": f"{best_loss:.4f}@{best_epoch}"}
            bar.set_postfix(postfix, refresh=False)
            if patience and epoch - best_epoch >= patience:
                logger.info(
                    "early stop after epoch %d: best validation loss at %d", epoch, best_epoch
                )
                break
    if patience:
        network.load_state_dict(best_state)
    network.eval()
    kept = best_epoch if patience else len(history)
    return FitResult(network=network, history=history, kept_epoch=kept)
