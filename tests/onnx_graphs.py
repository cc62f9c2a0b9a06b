"""ONNX graphs for the import tests: tf2onnx-style MatMul+Add MLPs built with `onnx.helper`, and
real `torch.onnx.export` calls of tiny `nn.Sequential` MLPs."""

from __future__ import annotations

import warnings
from itertools import pairwise
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

__all__ = ["dense_graph", "save", "torch_export", "torch_mlp"]


def _const(
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    name: str,
    value: np.ndarray,
    as_node: bool,
) -> str:
    tensor = numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)
    if as_node:
        nodes.append(helper.make_node("Constant", [], [name], value=tensor, name=f"{name}/const"))
    else:
        inits.append(tensor)
    return name


def dense_graph(
    widths: tuple[int, ...] = (3, 8, 1),
    *,
    activation: str = "Relu",
    rates: tuple[float, ...] | None = None,
    prefix: tuple[np.ndarray, np.ndarray] | None = None,
    head: str | None = None,
    constants_as_nodes: bool = False,
    opset: int = 13,
    seed: int = 0,
) -> onnx.ModelProto:
    """A Keras Dense stack as tf2onnx writes it: MatMul (x @ W, W of shape (in, out)) then Add.

    `rates` puts a Dropout (ratio as an input constant) in front of each Dense layer; `prefix`
    (mean, std) writes Sub then Div on the input; `head` is "Softmax" or "LogSoftmax".
    """
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    current = "input_1"
    if prefix is not None:
        mean = _const(nodes, inits, "norm/mean", prefix[0], constants_as_nodes)
        std = _const(nodes, inits, "norm/std", prefix[1], constants_as_nodes)
        nodes.append(helper.make_node("Sub", [current, mean], ["norm/sub"], name="norm/Sub"))
        nodes.append(helper.make_node("Div", ["norm/sub", std], ["norm/out"], name="norm/Div"))
        current = "norm/out"
    last = len(widths) - 2
    for k, (a, b) in enumerate(pairwise(widths)):
        if rates is not None and rates[k] > 0:
            ratio = _const(
                nodes, inits, f"dropout_{k}/ratio", np.array(rates[k]), constants_as_nodes
            )
            nodes.append(
                helper.make_node(
                    "Dropout", [current, ratio], [f"dropout_{k}/out"], name=f"dropout_{k}/Dropout"
                )
            )
            current = f"dropout_{k}/out"
        w = _const(
            nodes,
            inits,
            f"dense_{k}/kernel",
            rng.normal(size=(a, b)) / np.sqrt(a),
            constants_as_nodes,
        )
        bias = _const(nodes, inits, f"dense_{k}/bias", rng.normal(size=b) * 0.1, constants_as_nodes)
        nodes.append(
            helper.make_node("MatMul", [current, w], [f"dense_{k}/mm"], name=f"dense_{k}/MatMul")
        )
        nodes.append(
            helper.make_node(
                "Add", [f"dense_{k}/mm", bias], [f"dense_{k}/out"], name=f"dense_{k}/BiasAdd"
            )
        )
        current = f"dense_{k}/out"
        if k < last:
            nodes.append(
                helper.make_node(
                    activation, [current], [f"dense_{k}/act"], name=f"dense_{k}/{activation}"
                )
            )
            current = f"dense_{k}/act"
    if head is not None:
        nodes.append(helper.make_node(head, [current], ["head"], name=f"head/{head}", axis=-1))
        current = "head"
    nodes.append(helper.make_node("Identity", [current], ["output_1"], name="output_1/Identity"))
    graph = helper.make_graph(
        nodes,
        "tf2onnx",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__1", widths[0]])],
        [helper.make_tensor_value_info("output_1", TensorProto.FLOAT, ["unk__2", widths[-1]])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="tf2onnx",
        producer_version="1.16.1",
    )
    model.ir_version = 8
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def torch_mlp(
    widths: tuple[int, ...] = (3, 8, 8, 1),
    activation: type[nn.Module] = nn.ReLU,
    rates: tuple[float, ...] = (0.05, 0.1, 0.1),
    head: nn.Module | None = None,
    seed: int = 0,
) -> nn.Sequential:
    """nn.Sequential(Dropout, Linear, act, Dropout, Linear, ..., Linear[, head])."""
    torch.manual_seed(seed)
    modules: list[nn.Module] = []
    for k, (a, b) in enumerate(pairwise(widths)):
        modules.append(nn.Dropout(rates[k]))
        modules.append(nn.Linear(a, b))
        if k < len(widths) - 2:
            modules.append(activation())
    if head is not None:
        modules.append(head)
    return nn.Sequential(*modules)


def torch_export(
    module: nn.Module,
    path: Path,
    *,
    train: bool,
    dynamo: bool,
    n_features: int = 3,
    opset: int | None = None,
) -> Path:
    """`torch.onnx.export` with either exporter, in train mode (Dropout nodes) or eval mode."""
    module.train(train)
    mode = torch.onnx.TrainingMode.TRAINING if train else torch.onnx.TrainingMode.EVAL
    example = (torch.randn(4, n_features),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(
                module,
                example,
                str(path),
                dynamo=True,
                training=mode,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False,
            )
        else:
            torch.onnx.export(
                module,
                example,
                str(path),
                dynamo=False,
                training=mode,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "n"}},
                do_constant_folding=not train,
                opset_version=opset or 17,
            )
    return path
