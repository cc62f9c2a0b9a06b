"""The trainer's stacked mode: it reproduces `fit`, and each model drops at its own rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from service.model import DropoutMLP, MLPConfig
from service.model.mc import mc_forward
from service.training import Stack, fit, fit_stacked


def network(seed: int, rate: float = 0.0, n_features: int = 3) -> DropoutMLP:
    config = MLPConfig(n_features, 1, hidden=(8,), dropout=(rate,), input_dropout=rate)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DropoutMLP(config)


def test_stacked_training_without_dropout_reproduces_dropserve_fit() -> None:
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(100, 3)), dtype=torch.float32)
    y = torch.as_tensor(rng.normal(size=(100, 1)), dtype=torch.float32)
    reference = network(seed=5)
    stack = Stack.from_networks([network(seed=5), network(seed=6)], torch.device("cpu"))
    decays = [1e-3, 2e-3]
    fit(
        reference,
        (x, y),
        None,
        epochs=4,
        batch_size=32,
        learning_rate=1e-2,
        decays=decays,
        patience=0,
        seed=11,
    )
    fit_stacked(
        stack,
        torch.stack([x, x]),
        torch.stack([y, y]),
        torch.tensor([decays, decays]),
        epochs=4,
        batch_size=32,
        learning_rate=1e-2,
        seed=11,
    )
    trained = stack.network(0)
    for ours, theirs in zip(trained.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    # ...and the second model, started elsewhere, trained on its own.
    assert not torch.allclose(stack.network(1).linears[0].weight, trained.linears[0].weight)


def test_stacked_masks_drop_at_each_models_rate() -> None:
    networks = [network(seed=1, rate=0.0), network(seed=1, rate=0.5)]
    stack = Stack.from_networks(networks, torch.device("cpu"))
    ones = torch.ones(2, 4000, 3)
    passes = stack.mc_passes(ones, 3, torch.Generator().manual_seed(0), 1 << 20)
    plain = networks[0](ones[0], stochastic=False)[:, 0]
    torch.testing.assert_close(passes[0], plain.expand(3, -1))  # p = 0: every pass identical
    assert passes[1].std() > 0.1


def test_a_stack_of_one_draws_the_masks_of_dropout_mlp_mc_forward() -> None:
    """Same generator, same masks and scale: the stack's passes are the network's own."""
    alone = network(seed=3, rate=0.3)
    stack = Stack.from_networks([alone], torch.device("cpu"))
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    passes = stack.mc_passes(x[None], 9, torch.Generator().manual_seed(4), 1 << 20)
    with torch.no_grad():
        expected = alone.mc_forward(x, 9, torch.Generator().manual_seed(4))[:, :, 0]
    assert passes.shape == (1, 9, 6)
    torch.testing.assert_close(passes[0], expected, rtol=1e-6, atol=1e-6)


def test_stacked_training_takes_one_mc_pass_per_step_with_the_models_masks() -> None:
    """A training step's forward is the MC forward with one pass, so its outputs are those of
    `mc_passes` on the same generator: each model's masks at its own rate."""
    networks = [network(seed=1, rate=0.0), network(seed=2, rate=0.4)]
    stack = Stack.from_networks(networks, torch.device("cpu"))
    x = torch.randn(2, 10, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        one = mc_forward(stack, x, 1, stack.masks(torch.Generator().manual_seed(5)))[:, 0, :, 0]
    passes = stack.mc_passes(x, 1, torch.Generator().manual_seed(5), 1 << 20)
    assert torch.equal(one, passes[:, 0])
    with pytest.raises(ValueError, match="inverted dropout with ReLU only"):
        Stack.from_networks(
            [DropoutMLP(MLPConfig(3, 1, hidden=(4,), activation="tanh"))], torch.device("cpu")
        )
