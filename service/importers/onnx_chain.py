"""Walk an ONNX graph from its input to its output and read it as a dropout MLP.

The chain dropserve accepts, in order: an optional standardisation prefix (Sub, Div, Mul or Add
with a constant), then affine layers (Gemm, or MatMul followed by Add as tf2onnx writes Dense
layers) with one activation between them (Relu, Tanh, Sigmoid, Gelu or its Erf spelling) and
optional Dropout in front of each, then an optional Softmax or LogSoftmax. Identity nodes pass
through. Anything else, or a tensor read by two nodes, is refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import onnx

from service.errors import ModelImportError
from service.importers.network import Head, ImportedNetwork
from service.importers.onnx_affine import read_affine
from service.importers.onnx_gelu import match_erf_gelu
from service.importers.onnx_graph import GraphIndex, describe
from service.model.mlp import Activation

__all__ = ["read_chain"]

Float64 = npt.NDArray[np.float64]

ACTIVATION_OPS: dict[str, Activation] = {
    "Relu": "relu",
    "Tanh": "tanh",
    "Sigmoid": "sigmoid",
    "Gelu": "gelu",
}
HEAD_OPS: dict[str, Head] = {"Softmax": "softmax", "LogSoftmax": "log_softmax"}
PREFIX_OPS = {"Sub", "Div", "Mul", "Add"}
SUPPORTED = (
    "Gemm, MatMul+Add, Relu, Tanh, Sigmoid, Gelu (or its Erf spelling), Dropout, Identity, a "
    "Sub/Div/Mul/Add standardisation prefix and a final Softmax or LogSoftmax"
)


@dataclass
class _Walk:
    """What the walk has read so far."""

    weights: list[Float64] = field(default_factory=list)
    affine_nodes: list[int] = field(default_factory=list)
    biases: list[Float64] = field(default_factory=list)
    activations: list[tuple[Activation, str]] = field(default_factory=list)
    rates: dict[int, float] = field(default_factory=dict)
    pending_rate: tuple[float, str] | None = None
    scale: Float64 = field(default_factory=lambda: np.ones(1))
    shift: Float64 = field(default_factory=lambda: np.zeros(1))
    head: Head | None = None
    visited: set[int] = field(default_factory=set)
    # After an affine layer the next op must be its activation (or the end of the network).
    after_affine: bool = False


def _refuse(index: GraphIndex, position: int, why: str) -> ModelImportError:
    return ModelImportError(f"{describe(index.node(position), position)}: {why}")


def _prefix(index: GraphIndex, position: int, tensor: str, walk: _Walk) -> None:
    node = index.node(position)
    other = 1 if node.input[0] == tensor else 0
    value = index.constant(position, other, "operand")
    if value.ndim > 2 or (value.ndim == 2 and value.shape[0] != 1):
        raise _refuse(
            index, position, f"its constant has shape {list(value.shape)}, not per feature"
        )
    value = value.reshape(-1)
    op = node.op_type
    try:
        if op == "Add":
            walk.shift = walk.shift + value
        elif op == "Sub" and other == 1:
            walk.shift = walk.shift - value
        elif op == "Sub":  # c - x
            walk.scale, walk.shift = -walk.scale, value - walk.shift
        elif op == "Mul":
            walk.scale, walk.shift = walk.scale * value, walk.shift * value
        elif other == 1:  # x / c
            if np.any(value == 0.0):
                raise _refuse(index, position, "it divides by zero")
            walk.scale, walk.shift = walk.scale / value, walk.shift / value
        else:
            raise _refuse(
                index, position, "it divides a constant by the input, which is not affine"
            )
    except ValueError as exc:
        raise _refuse(index, position, f"its constant does not fit the features ({exc})") from exc


def _dropout(index: GraphIndex, position: int, walk: _Walk) -> float:
    node = index.node(position)
    if len(node.output) > 1 and node.output[1] and index.users(node.output[1]):
        raise _refuse(index, position, "its mask output is read by another node")
    if len(node.input) > 1 and node.input[1]:
        ratio = index.constant(position, 1, "ratio")
        # Exporters store the ratio as float32: 0.1 becomes 0.10000000149; keep what was meant.
        return float(str(np.float32(ratio.reshape(-1)[0])))
    for attribute in node.attribute:  # opset < 12 keeps the ratio as an attribute
        if attribute.name == "ratio":
            return float(onnx.helper.get_attribute_value(attribute))
    return 0.5  # the ONNX default


def _step(index: GraphIndex, position: int, tensor: str, walk: _Walk) -> str:
    """Read one node of the chain; returns the tensor the chain continues with."""
    node = index.node(position)
    op = node.op_type
    layer = len(walk.weights)
    if node.input[0] != tensor and op not in PREFIX_OPS:
        raise _refuse(index, position, f"it reads the chain's tensor {tensor!r} in the wrong slot")
    if op == "Identity":
        return str(node.output[0])
    if op in {"Gemm", "MatMul"}:
        if walk.after_affine:
            raise _refuse(index, position, "two affine layers follow each other with no activation")
        width = walk.weights[-1].shape[0] if walk.weights else index.declared_features
        weight, bias, out, used = read_affine(index, position, width)
        walk.visited.update(used)
        if walk.pending_rate is not None:
            walk.rates[layer] = walk.pending_rate[0]
            walk.pending_rate = None
        walk.weights.append(weight)
        walk.affine_nodes.append(position)
        walk.biases.append(bias)
        walk.after_affine = True
        return out
    if op in ACTIVATION_OPS:
        if not walk.after_affine:
            raise _refuse(index, position, "an activation must follow an affine layer")
        for attribute in node.attribute:
            value = onnx.helper.get_attribute_value(attribute)
            if attribute.name == "approximate" and value not in (b"none", "none"):
                raise _refuse(
                    index, position, "tanh-approximate GELU is not the exact GELU dropserve runs"
                )
        walk.activations.append((ACTIVATION_OPS[op], describe(node, position)))
        walk.after_affine = False
        return str(node.output[0])
    if op == "Dropout":
        if walk.after_affine:
            raise _refuse(
                index,
                position,
                "it follows an affine layer directly; dropserve drops the outputs of activations "
                "(and nothing after the last layer), so a Dropout must follow an activation",
            )
        if walk.pending_rate is not None:
            raise _refuse(index, position, f"it follows another Dropout ({walk.pending_rate[1]})")
        walk.pending_rate = (_dropout(index, position, walk), describe(node, position))
        return str(node.output[0])
    if op in PREFIX_OPS and not walk.weights and walk.pending_rate is None:
        _prefix(index, position, tensor, walk)
        return str(node.output[0])
    if op in HEAD_OPS and walk.after_affine:
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        if axis not in (-1, 1):
            raise _refuse(index, position, f"it normalises over axis {axis}, not over the outputs")
        walk.head = HEAD_OPS[op]
        walk.after_affine = False
        return str(node.output[0])
    raise _refuse(index, position, f"it is not part of an MLP chain; dropserve imports {SUPPORTED}")


def _next_node(index: GraphIndex, tensor: str, walk: _Walk) -> tuple[int, str | None]:
    """The one node that reads `tensor`, or a whole Erf-spelled GELU as (first node, its end)."""
    users = index.users(tensor)
    if len(users) > 1 and walk.after_affine:
        width = walk.weights[-1].shape[0]
        matched = match_erf_gelu(index, tensor, width)
        if matched is not None:
            end, nodes = matched
            walk.visited.update(nodes)
            walk.activations.append(("gelu", describe(index.node(nodes[0]), nodes[0])))
            walk.after_affine = False
            return nodes[0], end
    if len(users) > 1:
        readers = "; ".join(describe(index.node(u), u) for u in users)
        raise ModelImportError(
            f"the graph branches: tensor {tensor!r} is read by {len(users)} nodes ({readers}); "
            "dropserve imports a single chain from input to output"
        )
    return users[0], None


def read_chain(index: GraphIndex) -> ImportedNetwork:
    """Read the whole graph as a dropout MLP.

    Raises:
        ModelImportError: naming the first node that does not fit (op, branch, shapes, mixed
            activations, a non-constant weight or ratio, a Dropout after the last layer).
    """
    walk = _Walk()
    tensor = index.input_name
    while tensor != index.output_name:
        if not index.users(tensor):
            raise ModelImportError(
                f"tensor {tensor!r} leads nowhere: no node reads it and it is not the graph's "
                f"output {index.output_name!r}"
            )
        position, gelu_end = _next_node(index, tensor, walk)
        if gelu_end is not None:
            tensor = gelu_end
            continue
        walk.visited.add(position)
        if walk.head is not None and index.node(position).op_type != "Identity":
            raise _refuse(index, position, "nothing may follow the final Softmax or LogSoftmax")
        tensor = _step(index, position, tensor, walk)
    if index.users(tensor):
        users = "; ".join(describe(index.node(u), u) for u in index.users(tensor))
        raise ModelImportError(f"the graph's output {tensor!r} is also read by {users}")
    return _finish(index, walk)


def _finish(index: GraphIndex, walk: _Walk) -> ImportedNetwork:
    for position, node in enumerate(index.nodes):
        if position not in walk.visited and node.op_type not in {"Constant", "Identity"}:
            raise _refuse(index, position, "it lies outside the chain from input to output")
    if not walk.weights:
        raise ModelImportError("the graph has no affine layer (Gemm or MatMul)")
    if walk.pending_rate is not None:
        raise ModelImportError(
            f"{walk.pending_rate[1]} follows the last affine layer, where dropserve has no dropout"
        )
    if not walk.after_affine and walk.head is None:
        last = walk.activations[-1][1]
        raise ModelImportError(
            f"the network ends with an activation ({last}); dropserve's last layer is affine, "
            "optionally followed by Softmax or LogSoftmax"
        )
    kinds = {kind for kind, _ in walk.activations}
    if len(kinds) > 1:
        listed = "; ".join(f"{kind} at {where}" for kind, where in walk.activations)
        raise ModelImportError(f"the hidden layers mix activations ({listed}); use one throughout")
    n_features = walk.weights[0].shape[1]
    for name, values in (("scale", walk.scale), ("shift", walk.shift)):
        if values.size not in (1, n_features):
            raise ModelImportError(
                f"the standardisation prefix has {values.size} {name} values for {n_features} "
                "features"
            )
    rates = None
    if walk.rates:
        rates = tuple(walk.rates.get(layer, 0.0) for layer in range(len(walk.weights)))
    return ImportedNetwork(
        weights=walk.weights,
        biases=walk.biases,
        activation=walk.activations[0][0] if walk.activations else "relu",
        rates=rates,
        head=walk.head,
        input_scale=np.broadcast_to(walk.scale, (n_features,)).copy(),
        input_shift=np.broadcast_to(walk.shift, (n_features,)).copy(),
        affine_nodes=tuple(walk.affine_nodes),
    )
