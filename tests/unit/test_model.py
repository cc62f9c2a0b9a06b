"""MLPConfig validation, the network's layout and eval pass, and the Standardizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from service.model import DropoutMLP, MLPConfig, Standardizer, dropout
from service.model.mlp import Activation, DropoutStyle
from tests.factories import make_config, make_network


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_features": 0}, "at least one feature"),
        ({"hidden": (8, 0), "dropout": (0.1, 0.1)}, "widths must be positive"),
        ({"hidden": (8, 8), "dropout": (0.1,)}, "one dropout rate per hidden layer"),
        ({"dropout": (1.0,)}, r"\[0, 1\)"),
        ({"dropout": (-0.1,)}, r"\[0, 1\)"),
        ({"input_dropout": float("nan")}, r"\[0, 1\)"),
        ({"task": "classification", "n_outputs": 1}, "at least two classes"),
        ({"activation": "swish"}, "unknown activation 'swish'"),
    ],
)
def test_config_rejects_invalid_values(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"n_features": 3, "n_outputs": 1, "hidden": (8,), "dropout": (0.1,)}
    with pytest.raises(ValueError, match=message):
        MLPConfig(**{**base, **kwargs})  # type: ignore[arg-type]


def test_config_round_trips_through_a_dict() -> None:
    config = make_config(
        task="classification", style="classic", hidden=(8, 4), dropout=(0.2, 0.3), input_dropout=0.1
    )
    data = config.to_dict()
    assert data["hidden"] == [8, 4]
    assert data["dropout"] == [0.2, 0.3]
    assert MLPConfig.from_dict(data) == config
    assert config.rates == (0.1, 0.2, 0.3)


def test_network_layout_follows_the_config() -> None:
    network = make_network(
        make_config(hidden=(8, 4), dropout=(0.1, 0.1), n_features=5, n_outputs=2)
    )
    shapes = [tuple(layer.weight.shape) for layer in network.layers]
    assert shapes == [(8, 5), (4, 8), (2, 4)]
    out = network(torch.zeros(7, 5))
    assert out.shape == (7, 2)


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "sigmoid"])
def test_eval_pass_matches_a_hand_written_forward(activation: Activation) -> None:
    config = make_config(
        style="classic",
        hidden=(6, 5),
        dropout=(0.2, 0.4),
        input_dropout=0.1,
        activation=activation,
    )
    network = make_network(config, seed=3)
    x = torch.randn(9, 3, generator=torch.Generator().manual_seed(0))
    act = {
        "relu": torch.relu,
        "tanh": torch.tanh,
        "gelu": torch.nn.functional.gelu,
        "sigmoid": torch.sigmoid,
    }[activation]
    h = x
    for index, (layer, rate) in enumerate(zip(network.layers, config.rates, strict=True)):
        h = (h * (1.0 - rate)) @ layer.weight.T + layer.bias  # weight-scaling rule
        if index < len(network.layers) - 1:
            h = act(h)
    with torch.no_grad():
        torch.testing.assert_close(network(x, stochastic=False), h, rtol=1e-5, atol=1e-6)


def test_mode_decides_stochasticity_unless_asked_explicitly() -> None:
    network = make_network(make_config(hidden=(64,), dropout=(0.5,)), seed=1)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        network.eval()
        assert torch.equal(network(x), network(x))
        assert not torch.equal(network(x, stochastic=True), network(x, stochastic=True))
        network.train()
        assert not torch.equal(network(x), network(x))
        assert torch.equal(network(x, stochastic=False), network(x, stochastic=False))


def dropout_layer_by_layer(
    network: DropoutMLP, x: torch.Tensor, passes: int, generator: torch.Generator
) -> torch.Tensor:
    """MC passes as written out: the rows once per pass, then `dropout` in front of each layer."""
    config = network.config
    h = x.repeat(passes, 1)
    last = len(network.linears) - 1
    for index, (layer, rate) in enumerate(zip(network.linears, config.rates, strict=True)):
        h = layer(dropout(h, rate, config.style, stochastic=True, generator=generator))
        if index < last:
            h = network.activation(h)
    return h.reshape(passes, x.shape[0], -1)


@pytest.mark.parametrize("style", ["inverted", "classic"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
def test_mc_forward_is_dropout_layer_by_layer_bit_for_bit(
    style: DropoutStyle, activation: Activation
) -> None:
    """The batched forward draws the masks `dropout` would and multiplies by the same scale."""
    config = make_config(
        style=style, hidden=(16, 8), dropout=(0.3, 0.1), input_dropout=0.2, activation=activation
    )
    network = make_network(config, seed=2)
    x = torch.randn(5, config.n_features, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batched = network.mc_forward(x, 7, torch.Generator().manual_seed(1))
        written_out = dropout_layer_by_layer(network, x, 7, torch.Generator().manual_seed(1))
    assert batched.shape == (7, 5, 1)
    assert torch.equal(batched, written_out)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mc_forward_backpropagates_like_dropout_layer_by_layer(activation: Activation) -> None:
    """With autograd recording, no activation its backward needs is overwritten in place."""
    config = make_config(
        hidden=(16, 8), dropout=(0.3, 0.1), input_dropout=0.2, activation=activation
    )
    network = make_network(config, seed=2)
    x = torch.randn(5, config.n_features, generator=torch.Generator().manual_seed(0))
    gradients = []
    for forward in (network.mc_forward, lambda *args: dropout_layer_by_layer(network, *args)):
        network.zero_grad()
        forward(x, 7, torch.Generator().manual_seed(1)).square().sum().backward()
        gradients.append([p.grad.clone() for p in network.parameters() if p.grad is not None])
    batched, written_out = gradients
    assert len(batched) == len(written_out) == 6
    for ours, theirs in zip(batched, written_out, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_standardizer_fits_z_scores_and_inverts_targets() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal([1.0, -4.0, 100.0], [2.0, 0.5, 30.0], size=(200, 3))
    targets = rng.normal(50.0, 7.0, size=(200, 1))
    scaler = Standardizer.fit(features, targets)
    z = scaler.features(features)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-12)  # ddof=0, like the fit
    np.testing.assert_allclose(scaler.inverse_targets(scaler.targets(targets)), targets, rtol=1e-12)


def test_standardizer_keeps_constant_columns_finite() -> None:
    features = np.column_stack([np.full(10, 3.0), np.arange(10.0)])
    scaler = Standardizer.fit(features)
    assert scaler.feature_std[0] == 1.0
    assert np.isfinite(scaler.features(features)).all()
    assert scaler.target_mean is None


def test_classification_standardizer_has_no_target_statistics() -> None:
    scaler = Standardizer.fit(np.eye(3))
    with pytest.raises(ValueError, match="no target statistics"):
        scaler.targets(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="no target statistics"):
        scaler.inverse_targets(np.zeros((3, 1)))
