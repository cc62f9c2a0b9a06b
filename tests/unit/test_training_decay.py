"""Weight decay: the MC-dropout prior form per layer, on weights only."""

from __future__ import annotations

import pytest
import torch

from service.model import DropoutMLP, MLPConfig
from service.training import parameter_groups, prior_weight_decay
from service.training.decay import add_decay_gradients, stacked_decay


def test_prior_lambda_per_layer_uses_that_layers_dropout_rate() -> None:
    config = MLPConfig(
        n_features=4, n_outputs=1, hidden=(8, 8), dropout=(0.1, 0.3), input_dropout=0.05
    )
    length_scale, tau, rows = 1e-2, 0.05, 800
    decays = prior_weight_decay(length_scale, tau, config.rates, rows)
    expected = [length_scale**2 * (1 - p) / (2 * rows * tau) for p in (0.05, 0.1, 0.3)]
    assert decays == pytest.approx(expected, rel=1e-15)
    assert decays[0] == pytest.approx(1e-4 * 0.95 / 80.0)


def test_parameter_groups_decay_weights_only() -> None:
    network = DropoutMLP(MLPConfig(n_features=3, n_outputs=2, hidden=(5, 4), dropout=(0.1, 0.1)))
    groups = parameter_groups(network, [1e-3, 2e-3, 3e-3])
    weights = [(group["params"], group["weight_decay"]) for group in groups[:-1]]
    for (params, decay), layer, lam in zip(
        weights, network.linears, [1e-3, 2e-3, 3e-3], strict=True
    ):
        assert params == [layer.weight]
        # Adam's coupled decay is the gradient of (wd / 2)||W||^2; the loss has lambda ||W||^2.
        assert decay == pytest.approx(2 * lam)
    biases = groups[-1]
    assert biases["weight_decay"] == 0.0
    assert {id(p) for p in biases["params"]} == {id(layer.bias) for layer in network.linears}
    every = [id(p) for group in groups for p in group["params"]]
    assert sorted(every) == sorted(id(p) for p in network.parameters())


def test_decay_shrinks_weights_and_leaves_biases_alone() -> None:
    # With a zero data loss, one Adam step moves only the decayed parameters.
    network = DropoutMLP(MLPConfig(n_features=2, n_outputs=1, hidden=(3,), dropout=(0.0,)))
    before = {name: value.clone() for name, value in network.state_dict().items()}
    optimizer = torch.optim.Adam(parameter_groups(network, [0.1, 0.1]), lr=0.01)
    (0.0 * network(torch.ones(1, 2)).sum()).backward()
    optimizer.step()
    after = network.state_dict()
    for name in before:
        moved = not torch.equal(before[name], after[name])
        assert moved == name.endswith("weight"), name


def test_stacked_decay_is_the_coupled_decay_adam_gets_from_parameter_groups() -> None:
    """The stacked trainer adds 2 lambda W to the gradient itself; one Adam step with a zero
    data loss then moves each model as Adam's own weight_decay moves the single network."""
    lambdas = [[0.1, 0.2], [0.3, 0.05]]
    networks = [
        DropoutMLP(MLPConfig(n_features=2, n_outputs=1, hidden=(3,), dropout=(0.0,)))
        for _ in lambdas
    ]
    weights = [
        torch.stack([n.linears[k].weight.detach().t() for n in networks]).requires_grad_(True)
        for k in range(2)
    ]
    stacked = torch.optim.Adam(weights, lr=0.01)
    (0.0 * (weights[0].sum() + weights[1].sum())).backward()
    add_decay_gradients(weights, stacked_decay(torch.tensor(lambdas)))
    stacked.step()
    for m, (network, decays) in enumerate(zip(networks, lambdas, strict=True)):
        single = torch.optim.Adam(parameter_groups(network, decays), lr=0.01)
        (0.0 * network(torch.ones(1, 2)).sum()).backward()
        single.step()
        for k, layer in enumerate(network.linears):
            torch.testing.assert_close(weights[k][m].detach().t(), layer.weight.detach())
