"""ONNX export: folding, the graph's shape, parity with PyTorch eval, a failing parity check."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
import torch

import service.export.onnx_export as onnx_export_module
from service.bundle import load_bundle
from service.engines.onnx_engine import OnnxEngine
from service.errors import ExportError
from service.export import (
    INPUT_NAME,
    OPSET,
    PARITY_TOLERANCE,
    AffineLayer,
    export_onnx,
    fold_network,
)
from service.model import DropoutMLP, Standardizer
from service.model.mlp import Activation, DropoutStyle, Task
from tests.factories import make_bundle, make_model, raw_features

STYLES = ["inverted", "classic"]
TASKS = ["regression", "classification"]
ACTIVATIONS = ["relu", "tanh", "gelu", "sigmoid"]
# Dropout everywhere, so a missing or doubled keep-probability scale breaks parity.
DEEP = {"hidden": (16, 8), "dropout": (0.2, 0.3), "input_dropout": 0.1}


def reference_output(
    network: DropoutMLP, standardizer: Standardizer, raw: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """PyTorch eval in float64: original-unit values, or class probabilities."""
    exact = copy.deepcopy(network).double().eval()
    scaled = torch.as_tensor(standardizer.features(raw), dtype=torch.float64)
    with torch.no_grad():
        out = exact(scaled, stochastic=False)
    if network.config.task == "classification":
        return torch.softmax(out, dim=-1).numpy()
    return standardizer.inverse_targets(out.numpy())


def relative_error(got: npt.NDArray[np.float64], expected: npt.NDArray[np.float64]) -> float:
    """The export's own measure: max |got - expected| / max(max |expected|, 1)."""
    return float(np.abs(got - expected).max()) / max(float(np.abs(expected).max()), 1.0)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("style", STYLES)
def test_onnx_engine_on_a_saved_bundle_matches_pytorch_eval(
    tmp_path: Path,
    record_property: Callable[[str, object], None],
    style: DropoutStyle,
    task: Task,
    activation: Activation,
) -> None:
    path = make_bundle(tmp_path, task=task, style=style, activation=activation, seed=5, **DEEP)
    bundle = load_bundle(path)
    engine = OnnxEngine(bundle, torch.device("cpu"), threads=1)
    engine.load()
    raw = raw_features(bundle.manifest.standardizer(), rows=256, seed=1)
    got = engine.predict(raw)
    expected = reference_output(bundle.network, bundle.manifest.standardizer(), raw)
    assert got.shape == expected.shape == (256, bundle.manifest.n_outputs)
    error = relative_error(got, expected)
    record_property("parity_error", error)
    record_property("export_parity_error", bundle.manifest.onnx.parity_max_error)
    print(
        f"parity {style}/{task}/{activation}: engine {error:.2e}, "
        f"export {bundle.manifest.onnx.parity_max_error:.2e}"
    )
    assert error <= PARITY_TOLERANCE
    assert 0.0 <= bundle.manifest.onnx.parity_max_error <= PARITY_TOLERANCE
    assert bundle.manifest.onnx.parity_tolerance == PARITY_TOLERANCE
    if task == "classification":
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("style", STYLES)
def test_fold_reproduces_eval_in_float64(style: DropoutStyle, task: Task) -> None:
    network, standardizer = make_model(seed=2, style=style, task=task, **DEEP)
    raw = raw_features(standardizer, rows=64, seed=0)
    layers = fold_network(network, standardizer)
    h = raw
    for index, layer in enumerate(layers):
        h = h @ layer.weight.T + layer.bias
        if index < len(layers) - 1:
            h = np.maximum(h, 0.0)
    exact = copy.deepcopy(network).double()
    with torch.no_grad():
        logits = exact(torch.as_tensor(standardizer.features(raw)), stochastic=False).numpy()
    expected = standardizer.inverse_targets(logits) if task == "regression" else logits
    np.testing.assert_allclose(h, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("task", TASKS)
def test_exported_graph_is_dropout_free_with_a_dynamic_batch_and_the_pinned_opset(
    task: Task,
) -> None:
    network, standardizer = make_model(seed=0, task=task, style="classic", **DEEP)
    result = export_onnx(network, standardizer, name="toy")
    model = onnx.load_from_string(result.onnx_bytes)
    onnx.checker.check_model(model, full_check=True)
    ops = {node.op_type for node in model.graph.node}
    assert "Dropout" not in ops
    assert ops <= {"Gemm", "Relu", "Softmax"}
    assert OPSET == 17
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    assert result.opset == OPSET
    (graph_input,) = model.graph.input
    assert graph_input.name == INPUT_NAME == result.input_name
    batch_dim, feature_dim = graph_input.type.tensor_type.shape.dim
    assert batch_dim.dim_param
    assert not batch_dim.HasField("dim_value")
    assert feature_dim.dim_value == network.config.n_features
    for output in model.graph.output:
        assert output.type.tensor_type.shape.dim[0].dim_param == batch_dim.dim_param
    assert [o.name for o in model.graph.output] == result.output_names
    session = ort.InferenceSession(result.onnx_bytes, providers=["CPUExecutionProvider"])
    for rows in (1, 33):
        raw = raw_features(standardizer, rows=rows).astype(np.float32)
        outputs = session.run(None, {INPUT_NAME: raw})
        assert all(out.shape == (rows, network.config.n_outputs) for out in outputs)


def test_the_parity_tolerance_is_the_documented_one() -> None:
    # Pinned: the docs promise ONNX equal to PyTorch eval within 1e-5 relative.
    assert PARITY_TOLERANCE == 1e-5


def test_export_records_a_finite_parity_error_within_tolerance() -> None:
    network, standardizer = make_model(seed=1, **DEEP)
    result = export_onnx(network, standardizer, name="toy")
    assert np.isfinite(result.parity_max_error)
    assert 0.0 <= result.parity_max_error <= result.parity_tolerance == PARITY_TOLERANCE


def test_a_broken_export_fails_its_parity_check(monkeypatch: pytest.MonkeyPatch) -> None:
    real_fold = onnx_export_module.fold_network

    def perturbed_fold(network: DropoutMLP, standardizer: Standardizer) -> list[AffineLayer]:
        layers = real_fold(network, standardizer)
        weight = layers[-1].weight.copy()
        weight[0, 0] += 0.5
        return [*layers[:-1], AffineLayer(weight, layers[-1].bias)]

    monkeypatch.setattr(onnx_export_module, "fold_network", perturbed_fold)
    network, standardizer = make_model(seed=0, **DEEP)
    with pytest.raises(
        ExportError, match=r"ONNX export of 'toy' does not match PyTorch eval"
    ) as info:
        export_onnx(network, standardizer, name="toy")
    assert "exceeds the tolerance" in info.value.message


def test_a_forgotten_classic_scale_fails_the_parity_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Folding a classic-style net as if it were inverted is caught, not shipped."""
    network, standardizer = make_model(seed=0, style="classic", **DEEP)
    real_fold = onnx_export_module.fold_network

    def inverted_fold(net: DropoutMLP, scaler: Standardizer) -> list[AffineLayer]:
        clone = copy.deepcopy(net)
        clone.config = dataclasses.replace(net.config, style="inverted")
        return real_fold(clone, scaler)

    monkeypatch.setattr(onnx_export_module, "fold_network", inverted_fold)
    with pytest.raises(ExportError, match="does not match PyTorch eval"):
        export_onnx(network, standardizer, name="toy")


def test_onnx_engine_is_not_ready_before_load(tmp_path: Path) -> None:
    bundle = load_bundle(make_bundle(tmp_path))
    engine = OnnxEngine(bundle, torch.device("cpu"))
    assert not engine.ready
    assert engine.providers == []
    with pytest.raises(RuntimeError, match="before load"):
        engine.predict(np.zeros((1, 3)))
    engine.load()
    assert engine.ready
    assert engine.providers == ["CPUExecutionProvider"]
