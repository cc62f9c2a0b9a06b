"""The training loop: early stopping keeps the best epoch, fixed epochs the last; seeds hold."""

from __future__ import annotations

import pytest
import torch

from service.errors import DropserveError
from service.model import DropoutMLP, MLPConfig
from service.training import FitResult, fit
from service.training.trainer import loss_of

Split = tuple[torch.Tensor, torch.Tensor]


def noisy_data(rows: int, seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 4, generator=generator)
    y = x[:, :1] + 0.8 * torch.randn(rows, 1, generator=generator)
    return x, y


def train(
    train_split: Split, validation: Split | None, *, epochs: int, patience: int, seed: int = 0
) -> FitResult:
    torch.manual_seed(0)
    network = DropoutMLP(MLPConfig(n_features=4, n_outputs=1, hidden=(64,), dropout=(0.0,)))
    return fit(
        network,
        train_split,
        validation,
        epochs=epochs,
        batch_size=16,
        learning_rate=0.01,
        decays=[0.0, 0.0],
        patience=patience,
        seed=seed,
    )


def validation_loss(result: FitResult, validation: Split) -> float:
    with torch.no_grad():
        return float(loss_of(result.network, result.network(validation[0]), validation[1]))


def test_early_stopping_restores_the_best_epochs_weights() -> None:
    # 40 noisy rows and a wide net at a high learning rate: the validation loss turns up soon.
    validation = noisy_data(200, seed=1)
    result = train(noisy_data(40, seed=0), validation, epochs=300, patience=10)
    losses = [record.validation_loss for record in result.history]
    assert all(loss is not None for loss in losses)
    best = min(loss for loss in losses if loss is not None)
    assert len(result.history) == result.kept_epoch + 10 < 300, "it should have stopped early"
    assert result.kept.validation_loss == best
    assert losses[-1] is not None
    assert losses[-1] > best, "the last epoch is worse, so restoring made a difference"
    assert not result.network.training
    assert validation_loss(result, validation) == pytest.approx(best, rel=1e-6)


def test_patience_zero_trains_every_epoch_and_keeps_the_last() -> None:
    validation = noisy_data(200, seed=1)
    result = train(noisy_data(40, seed=0), validation, epochs=30, patience=0)
    assert len(result.history) == 30
    assert result.kept_epoch == 30
    last = result.history[-1].validation_loss
    assert last is not None
    assert validation_loss(result, validation) == pytest.approx(last, rel=1e-6)


def test_without_validation_rows_training_runs_and_early_stopping_is_refused() -> None:
    result = train(noisy_data(40, seed=0), None, epochs=3, patience=0)
    assert [record.validation_loss for record in result.history] == [None, None, None]
    with pytest.raises(ValueError, match="needs validation rows"):
        train(noisy_data(40, seed=0), None, epochs=3, patience=2)


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    data = noisy_data(64, seed=0)

    def weights(seed: int) -> dict[str, torch.Tensor]:
        return train(data, None, epochs=3, patience=0, seed=seed).network.state_dict()

    first, again, other = weights(1), weights(1), weights(2)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_diverging_training_is_a_clear_error() -> None:
    x, y = noisy_data(32, seed=0)
    with pytest.raises(DropserveError, match="lower the learning rate"):
        train((x, y * float("inf")), None, epochs=2, patience=0)
