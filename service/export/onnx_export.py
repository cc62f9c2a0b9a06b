"""Build the deterministic ONNX graph and prove it matches PyTorch eval before it is written."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from service.errors import ExportError
from service.export.fold import AffineLayer, fold_network
from service.model import DropoutMLP, Standardizer

__all__ = [
    "INPUT_NAME",
    "OPSET",
    "PARITY_TOLERANCE",
    "ExportResult",
    "export_onnx",
    "output_names",
    "torch_eval",
]

logger = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "features"
# max |onnx - torch| relative to the largest |torch| output (at least 1): float32 reaches ~1e-6.
PARITY_TOLERANCE = 1e-5
PARITY_ROWS = 512


@dataclass(frozen=True)
class ExportResult:
    onnx_bytes: bytes
    opset: int
    input_name: str
    output_names: list[str]
    parity_max_error: float
    parity_tolerance: float


def output_names(task: str) -> list[str]:
    """ONNX output tensors: regression values, or class logits and softmax probabilities."""
    return ["prediction"] if task == "regression" else ["logits", "probabilities"]


def _activation_nodes(kind: str, source: str, target: str, tag: str) -> list[onnx.NodeProto]:
    if kind == "relu":
        return [helper.make_node("Relu", [source], [target])]
    if kind == "tanh":
        return [helper.make_node("Tanh", [source], [target])]
    if kind == "sigmoid":
        return [helper.make_node("Sigmoid", [source], [target])]
    if kind == "gelu":  # exact GELU, 0.5 x (1 + erf(x / sqrt 2)); the Gelu op needs opset 20
        return [
            helper.make_node("Mul", [source, "inv_sqrt2"], [f"{tag}_scaled"]),
            helper.make_node("Erf", [f"{tag}_scaled"], [f"{tag}_erf"]),
            helper.make_node("Add", [f"{tag}_erf", "one"], [f"{tag}_erf1"]),
            helper.make_node("Mul", [source, f"{tag}_erf1"], [f"{tag}_x_erf1"]),
            helper.make_node("Mul", [f"{tag}_x_erf1", "half"], [target]),
        ]
    raise ExportError(f"activation {kind!r} has no ONNX lowering")


def build_graph(
    layers: list[AffineLayer], activation: str, task: str, name: str
) -> onnx.ModelProto:
    """A graph of Gemm + activation nodes with a dynamic batch axis; it holds no Dropout node."""
    nodes: list[onnx.NodeProto] = []
    initializers = [
        numpy_helper.from_array(np.array(1.0 / math.sqrt(2.0), dtype=np.float32), "inv_sqrt2"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
    ]
    current = INPUT_NAME
    outputs = output_names(task)
    last = len(layers) - 1
    for index, layer in enumerate(layers):
        w_name, b_name = f"layer{index}.weight", f"layer{index}.bias"
        initializers.append(numpy_helper.from_array(layer.weight.astype(np.float32), w_name))
        initializers.append(numpy_helper.from_array(layer.bias.astype(np.float32), b_name))
        affine = outputs[0] if index == last else f"layer{index}.affine"
        nodes.append(helper.make_node("Gemm", [current, w_name, b_name], [affine], transB=1))
        if index < last:
            current = f"layer{index}.act"
            nodes.extend(_activation_nodes(activation, affine, current, f"layer{index}"))
    if task == "classification":
        nodes.append(helper.make_node("Softmax", [outputs[0]], [outputs[1]], axis=-1))
    used = {name for node in nodes for name in node.input}
    initializers = [init for init in initializers if init.name in used]
    n_in = layers[0].weight.shape[1]
    n_out = layers[-1].weight.shape[0]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["batch", n_out]) for o in outputs],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dropserve"
    )
    model.ir_version = 8  # readable by every ONNX Runtime since 1.10
    onnx.checker.check_model(model, full_check=True)
    return model


def torch_eval(
    network: DropoutMLP, standardizer: Standardizer, raw: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32]:
    """The PyTorch eval-mode output for raw features, in original units (or class logits)."""
    scaled = torch.as_tensor(standardizer.features(raw), dtype=torch.float32)
    with torch.inference_mode():
        out = network(scaled, stochastic=False).double().numpy()
    if network.config.task == "regression":
        out = standardizer.inverse_targets(out)
    result: npt.NDArray[np.float32] = out.astype(np.float32)
    return result


def export_onnx(
    network: DropoutMLP, standardizer: Standardizer, *, name: str, seed: int = 0
) -> ExportResult:
    """Export and validate; raises ExportError when ONNX Runtime and PyTorch disagree.

    Parity is checked on random rows drawn around the training distribution (mean +- 3 std).
    """
    import onnxruntime as ort

    config = network.config
    model = build_graph(fold_network(network, standardizer), config.activation, config.task, name)
    onnx_bytes = model.SerializeToString()

    rng = np.random.default_rng(seed)
    mean = np.asarray(standardizer.feature_mean)
    std = np.asarray(standardizer.feature_std)
    raw = mean + std * rng.uniform(-3.0, 3.0, size=(PARITY_ROWS, config.n_features))
    expected = torch_eval(network, standardizer, raw)

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    (got,) = session.run([output_names(config.task)[0]], {INPUT_NAME: raw.astype(np.float32)})
    scale = max(float(np.abs(expected).max()), 1.0)
    error = float(np.abs(got - expected).max()) / scale
    if not error <= PARITY_TOLERANCE:
        raise ExportError(
            f"ONNX export of {name!r} does not match PyTorch eval: max relative error {error:.3g} "
            f"exceeds the tolerance {PARITY_TOLERANCE:g}"
        )
    logger.info("exported %s to ONNX opset %d, parity error %.3g", name, OPSET, error)
    return ExportResult(
        onnx_bytes=onnx_bytes,
        opset=OPSET,
        input_name=INPUT_NAME,
        output_names=output_names(config.task),
        parity_max_error=error,
        parity_tolerance=PARITY_TOLERANCE,
    )
