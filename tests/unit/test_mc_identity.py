"""MC dropout against closed forms, the deep-net gap, and the MCDropoutEngine.

For a network that is linear after its only dropout layer (one hidden layer h, dropout on the
hidden units only, output y = sum_j w_j s m_j h_j + b with m_j ~ Bernoulli(1-p)):
- inverted (s = 1/(1-p)): E y = sum_j w_j h_j + b,        Var y = p/(1-p) sum_j w_j^2 h_j^2;
- classic  (s = 1):       E y = (1-p) sum_j w_j h_j + b,  Var y = p(1-p) sum_j w_j^2 h_j^2.
Both means are the deterministic (weight-scaled) output, so MC averaging must converge to it.
Each check is a z-score: the MC error divided by its own standard error.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from service.bundle import load_bundle
from service.engines.mc_engine import MCDropoutEngine
from service.engines.onnx_engine import OnnxEngine
from service.model import DropoutMLP, Standardizer
from service.model.mlp import Activation, DropoutStyle, Task
from tests.factories import make_bundle, make_config, make_network, raw_features

Z_BOUND = 5.0
CPU = torch.device("cpu")


def closed_form(network: DropoutMLP, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact MC mean and variance of a one-hidden-layer net with hidden dropout only (float64)."""
    config = network.config
    (p,) = config.dropout
    first, last = network.layers
    h = network.activation(x @ first.weight.T + first.bias)  # (rows, hidden)
    w, b = last.weight[0], last.bias[0]
    signal = h @ w
    energy = (h**2) @ (w**2)
    if config.style == "inverted":
        return signal + b, p / (1.0 - p) * energy
    return (1.0 - p) * signal + b, p * (1.0 - p) * energy


def variance_standard_error(samples: torch.Tensor) -> torch.Tensor:
    """Standard error of the sample variance from the fourth central moment, per column."""
    t = samples.shape[0]
    centred = samples - samples.mean(dim=0)
    m2 = centred.pow(2).mean(dim=0)
    m4 = centred.pow(4).mean(dim=0)
    return torch.sqrt((m4 - m2**2 * (t - 3) / (t - 1)) / t)


@pytest.mark.parametrize("style", ["inverted", "classic"])
@pytest.mark.parametrize(("p", "activation"), [(0.1, "relu"), (0.5, "tanh")])
def test_mc_moments_match_the_closed_form_after_a_single_dropout_layer(
    record_property: Callable[[str, object], None],
    style: DropoutStyle,
    p: float,
    activation: Activation,
) -> None:
    config = make_config(
        style=style, hidden=(16,), dropout=(p,), input_dropout=0.0, activation=activation
    )
    network = copy.deepcopy(make_network(config, seed=11)).double()
    x = torch.randn(6, config.n_features, generator=torch.Generator().manual_seed(0)).double()
    passes = 50_000
    with torch.no_grad():
        exact_mean, exact_var = closed_form(network, x)
        deterministic = network(x, stochastic=False)[:, 0]
        samples = network.mc_forward(x, passes, torch.Generator().manual_seed(1))[:, :, 0]
    assert (exact_var > 1e-6).all(), "every row needs some variance for the z-scores"
    torch.testing.assert_close(exact_mean, deterministic, rtol=1e-12, atol=1e-12)

    mean_z = (samples.mean(dim=0) - exact_mean).abs() / torch.sqrt(exact_var / passes)
    var_z = (samples.var(dim=0) - exact_var).abs() / variance_standard_error(samples)
    record_property("max_mean_z", mean_z.max().item())
    record_property("max_var_z", var_z.max().item())
    assert mean_z.max() < Z_BOUND, f"MC mean off by {mean_z.tolist()} standard errors"
    assert var_z.max() < Z_BOUND, f"MC variance off by {var_z.tolist()} standard errors"


@pytest.mark.parametrize("style", ["inverted", "classic"])
def test_deep_relu_net_mc_mean_gap_is_reported(
    record_property: Callable[[str, object], None], style: DropoutStyle
) -> None:
    """Past a nonlinearity the weight-scaling rule is only an approximation: measure, not assert."""
    config = make_config(style=style, hidden=(512, 512, 512), dropout=(0.1, 0.1, 0.1), n_features=8)
    network = make_network(config, seed=0)
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    passes = 1000
    with torch.no_grad():
        deterministic = network(x, stochastic=False)[:, 0]
        samples = network.mc_forward(x, passes, torch.Generator().manual_seed(0))[:, :, 0].double()
    mc_std = samples.std(dim=0)
    gap = (samples.mean(dim=0) - deterministic.double()) / mc_std  # in predictive stds
    record_property("max_abs_gap_in_std", gap.abs().max().item())
    record_property("mean_abs_gap_in_std", gap.abs().mean().item())
    record_property("mc_standard_error_in_std", 1.0 / math.sqrt(passes))
    print(
        f"deep ReLU 3x512 p=0.1 {style}: |MC mean - deterministic| / MC std over 16 rows: "
        f"max {gap.abs().max().item():.3f}, mean {gap.abs().mean().item():.3f} "
        f"(MC standard error {1 / math.sqrt(passes):.3f})"
    )
    assert torch.isfinite(gap).all()
    assert (mc_std > 0).all()


def engine_standardizer(path: Path) -> Standardizer:
    return load_bundle(path).manifest.standardizer()


def loaded_engine(path: Path, chunk_elements: int = 1_000_000) -> MCDropoutEngine:
    engine = MCDropoutEngine(load_bundle(path), CPU, chunk_elements=chunk_elements)
    engine.load()
    return engine


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_engine_chunking_keeps_the_shape(tmp_path: Path, task: Task) -> None:
    path = make_bundle(tmp_path, task=task, hidden=(16, 8), dropout=(0.1, 0.2), input_dropout=0.1)
    features = raw_features(load_bundle(path).manifest.standardizer(), rows=5)
    n_outputs = 1 if task == "regression" else 3
    whole = loaded_engine(path)
    chunked = loaded_engine(path, chunk_elements=5 * 16 * 3)  # 3 passes per forward
    assert whole.chunk_passes(5) >= 10
    assert chunked.chunk_passes(5) == 3
    for engine in (whole, chunked):
        out = engine.sample(features, samples=10, seed=0)
        assert out.shape == (10, 5, n_outputs)
        assert out.device == CPU
        assert torch.isfinite(out).all()
        assert out.std(dim=0).min() > 0  # every row and output varies across passes


def test_engine_classification_probabilities_sum_to_one(tmp_path: Path) -> None:
    path = make_bundle(tmp_path, task="classification", hidden=(16,), dropout=(0.3,))
    engine = loaded_engine(path, chunk_elements=2048)
    probabilities = engine.sample(raw_features(engine_standardizer(path), rows=7), 25, seed=3)
    assert probabilities.shape == (25, 7, 3)
    assert (probabilities >= 0).all()
    torch.testing.assert_close(probabilities.sum(dim=-1), torch.ones(25, 7))


def test_engine_same_seed_same_samples(tmp_path: Path) -> None:
    path = make_bundle(tmp_path, hidden=(16, 16), dropout=(0.2, 0.2), input_dropout=0.1)
    engine = loaded_engine(path, chunk_elements=4096)
    features = raw_features(engine_standardizer(path), rows=4)
    first = engine.sample(features, 40, seed=9)
    assert torch.equal(first, engine.sample(features, 40, seed=9))
    assert torch.equal(first, loaded_engine(path, chunk_elements=4096).sample(features, 40, seed=9))
    assert not torch.equal(first, engine.sample(features, 40, seed=10))


def test_engine_is_not_ready_before_load(tmp_path: Path) -> None:
    engine = MCDropoutEngine(load_bundle(make_bundle(tmp_path)), CPU, chunk_elements=4096)
    assert not engine.ready
    with pytest.raises(RuntimeError, match="before load"):
        engine.sample(np.zeros((1, 3)), 2, seed=0)
    engine.load()
    assert engine.ready


def assert_engine_mean_matches_onnx(path: Path, device: torch.device) -> None:
    """MC mean in original units converges to the ONNX deterministic prediction (z-score)."""
    bundle = load_bundle(path)
    onnx_engine = OnnxEngine(bundle, CPU, threads=1)
    onnx_engine.load()
    features = raw_features(bundle.manifest.standardizer(), rows=4, seed=2)
    deterministic = torch.as_tensor(onnx_engine.predict(features))
    mc = MCDropoutEngine(bundle, device, chunk_elements=200_000)
    mc.load()
    passes = 20_000
    samples = mc.sample(features, passes, seed=0).double()
    z = (samples.mean(dim=0) - deterministic).abs() / (samples.std(dim=0) / math.sqrt(passes))
    assert z.max() < Z_BOUND, f"MC mean is {z.flatten().tolist()} standard errors from ONNX"


@pytest.mark.parametrize("style", ["inverted", "classic"])
def test_engine_mc_mean_converges_to_the_onnx_prediction(
    tmp_path: Path, style: DropoutStyle
) -> None:
    path = make_bundle(tmp_path, style=style, hidden=(16,), dropout=(0.3,), n_outputs=2)
    assert_engine_mean_matches_onnx(path, CPU)


def test_engine_on_cuda_is_reproducible_and_converges(
    tmp_path: Path, requires_cuda: torch.device
) -> None:
    path = make_bundle(tmp_path, style="classic", hidden=(16,), dropout=(0.3,))
    engine = loaded_engine(path)
    cuda_engine = MCDropoutEngine(load_bundle(path), requires_cuda, chunk_elements=1_000_000)
    cuda_engine.load()
    features = raw_features(engine_standardizer(path), rows=4)
    first = cuda_engine.sample(features, 50, seed=1)
    assert first.device == CPU
    assert first.shape == engine.sample(features, 50, seed=1).shape
    assert torch.equal(first, cuda_engine.sample(features, 50, seed=1))
    assert_engine_mean_matches_onnx(path, requires_cuda)
