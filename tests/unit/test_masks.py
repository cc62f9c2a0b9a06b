"""Dropout masks: drop rate, freshness per batch/pass/row, seeding, and each style's scaling.

The probe networks make masks visible: a hidden layer whose units are all exactly 1 (zero weights,
bias 1, ReLU) followed by an identity output layer, so the output is the hidden mask times the
style's scale; or no hidden layer, input dropout and an identity layer, for the input mask.
"""

from __future__ import annotations

import math

import pytest
import torch

from service.engines.stats import summarise_regression
from service.model import DropoutMLP, dropout
from service.model.mlp import DropoutStyle
from tests.factories import make_config, make_network

WIDTH = 64
Z_BOUND = 5.0
STYLES = ["inverted", "classic"]


def hidden_probe(p: float, style: DropoutStyle) -> DropoutMLP:
    """Output = the hidden-layer mask (times 1/(1-p) for inverted style)."""
    network = make_network(
        make_config(style=style, hidden=(WIDTH,), dropout=(p,), n_features=2, n_outputs=WIDTH)
    )
    with torch.no_grad():
        network.layers[0].weight.zero_()
        network.layers[0].bias.fill_(1.0)
        network.layers[1].weight.copy_(torch.eye(WIDTH))
        network.layers[1].bias.zero_()
    return network


def input_probe(p: float, style: DropoutStyle) -> DropoutMLP:
    """Output = the input mask applied to the input (no hidden layer, identity weights)."""
    network = make_network(
        make_config(
            style=style, hidden=(), dropout=(), input_dropout=p, n_features=WIDTH, n_outputs=WIDTH
        )
    )
    with torch.no_grad():
        network.layers[0].weight.copy_(torch.eye(WIDTH))
        network.layers[0].bias.zero_()
    return network


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_rate(dropped: torch.Tensor, p: float) -> None:
    n = dropped.numel()
    rate = dropped.double().mean().item()
    z = abs(rate - p) / math.sqrt(p * (1.0 - p) / n)
    assert z < Z_BOUND, f"drop rate {rate:.5f} over {n} units, expected {p} (z = {z:.2f})"


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_function_drops_at_rate_p(style: DropoutStyle, p: float) -> None:
    x = torch.ones(200_000)
    out = dropout(x, p, style, stochastic=True, generator=seeded(0))
    assert_rate(out == 0, p)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("layer", ["hidden", "input"])
def test_mc_passes_drop_at_rate_p(style: DropoutStyle, layer: str) -> None:
    p = 0.3
    network = hidden_probe(p, style) if layer == "hidden" else input_probe(p, style)
    x = torch.ones(8, network.config.n_features)
    with torch.no_grad():
        samples = network.mc_forward(x, passes=500, generator=seeded(1))
    assert samples.shape == (500, 8, WIDTH)
    assert_rate(samples == 0, p)


def test_inverted_style_rescales_kept_units_and_is_identity_in_eval() -> None:
    p = 0.25
    x = torch.randn(10_000, generator=seeded(0)) + 3.0  # no exact zeros among the inputs
    out = dropout(x, p, "inverted", stochastic=True, generator=seeded(1))
    kept = out != 0
    assert 0 < kept.sum() < x.numel()
    torch.testing.assert_close(out[kept], x[kept] / (1.0 - p), rtol=1e-6, atol=0.0)
    assert torch.equal(dropout(x, p, "inverted", stochastic=False), x)


def test_classic_style_keeps_units_unscaled_and_scales_by_keep_in_eval() -> None:
    p = 0.25
    x = torch.randn(10_000, generator=seeded(0)) + 3.0
    out = dropout(x, p, "classic", stochastic=True, generator=seeded(1))
    kept = out != 0
    assert 0 < kept.sum() < x.numel()
    assert torch.equal(out[kept], x[kept])
    torch.testing.assert_close(dropout(x, p, "classic", stochastic=False), x * (1.0 - p))


@pytest.mark.parametrize("style", STYLES)
def test_network_training_pass_uses_each_styles_scale(style: DropoutStyle) -> None:
    p = 0.4
    network = hidden_probe(p, style).train()
    with torch.no_grad():
        out = network(torch.zeros(16, 2))
        deterministic = network(torch.zeros(16, 2), stochastic=False)
    kept_value = 1.0 / (1.0 - p) if style == "inverted" else 1.0
    eval_value = 1.0 if style == "inverted" else 1.0 - p
    assert out.unique().tolist() == [0.0, pytest.approx(kept_value)]
    torch.testing.assert_close(deterministic, torch.full_like(deterministic, eval_value))


@pytest.mark.parametrize("style", STYLES)
def test_zero_rate_is_identity_even_when_stochastic(style: DropoutStyle) -> None:
    x = torch.randn(100, generator=seeded(0))
    assert torch.equal(dropout(x, 0.0, style, stochastic=True, generator=seeded(1)), x)


def test_masks_differ_between_training_batches_and_between_rows() -> None:
    network = hidden_probe(0.5, "inverted").train()
    x = torch.zeros(32, 2)  # identical rows
    with torch.no_grad():
        first, second = network(x), network(x)
    assert not torch.equal(first, second)
    assert first.unique(dim=0).shape[0] == 32, "rows of one batch shared a mask"


@pytest.mark.parametrize("layer", ["hidden", "input"])
def test_masks_differ_between_mc_passes_and_rows_within_a_pass(layer: str) -> None:
    network = hidden_probe(0.5, "classic") if layer == "hidden" else input_probe(0.5, "classic")
    x = torch.ones(4, network.config.n_features)  # identical rows
    with torch.no_grad():
        masks = network.mc_forward(x, passes=50, generator=seeded(0)) != 0
    # 200 masks of 64 fair coins: a repeat by chance has probability ~1e-15.
    assert masks.reshape(200, WIDTH).unique(dim=0).shape[0] == 200


def test_same_seed_same_samples_different_seed_different_samples() -> None:
    config = make_config(hidden=(16, 16), dropout=(0.2, 0.2), input_dropout=0.1)
    network = make_network(config, seed=4)
    x = torch.randn(5, config.n_features, generator=seeded(0))
    with torch.no_grad():
        a = network.mc_forward(x, passes=30, generator=seeded(7))
        b = network.mc_forward(x, passes=30, generator=seeded(7))
        c = network.mc_forward(x, passes=30, generator=seeded(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("style", STYLES)
def test_no_dropout_anywhere_gives_exactly_zero_mc_variance(style: DropoutStyle) -> None:
    config = make_config(style=style, hidden=(16, 8), dropout=(0.0, 0.0), input_dropout=0.0)
    network = make_network(config, seed=2)
    x = torch.randn(6, config.n_features, generator=seeded(0))
    with torch.no_grad():
        samples = network.mc_forward(x, passes=200, generator=seeded(0))
        deterministic = network(x, stochastic=False)
    summary = summarise_regression(samples, torch.tensor([1.0]), level=0.9)
    assert torch.count_nonzero(summary.epistemic_variance) == 0
    torch.testing.assert_close(samples[0], deterministic)
