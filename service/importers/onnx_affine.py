"""Read one affine layer: a Gemm (torch), or a MatMul and its bias Add (tf2onnx's Dense)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from service.errors import ModelImportError
from service.importers.onnx_graph import GraphIndex, describe

__all__ = ["read_affine"]

Float64 = npt.NDArray[np.float64]


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _bias(index: GraphIndex, position: int, slot: int, width: int, scale: float) -> Float64:
    value = index.constant(position, slot, "bias")
    try:
        return np.broadcast_to(value, (1, width)).reshape(width) * scale
    except ValueError:
        raise ModelImportError(
            f"{describe(index.node(position), position)}: its bias has shape "
            f"{list(value.shape)}, which does not fit the layer's {width} outputs"
        ) from None


def _matmul_bias(index: GraphIndex, out: str, width: int) -> tuple[Float64, str, list[int]]:
    """The Add that tf2onnx writes after a Dense layer's MatMul, if there is one."""
    users = index.users(out)
    if len(users) != 1 or index.node(users[0]).op_type != "Add":
        return np.zeros(width), out, []
    position = users[0]
    node = index.node(position)
    slot = 1 if node.input[0] == out else 0
    if node.input[slot] not in index.constants:
        return np.zeros(width), out, []  # not a bias: the walk decides what this Add is
    return _bias(index, position, slot, width, 1.0), node.output[0], [position]


def read_affine(
    index: GraphIndex, position: int, width: int | None
) -> tuple[Float64, Float64, str, list[int]]:
    """(weight (out, in), bias (out,), output tensor, nodes used) of the layer at `position`.

    Args:
        index: the indexed graph.
        position: a Gemm or MatMul node whose first input is the chain's tensor.
        width: the width the layer before produces (None: the graph's input does not say).

    Raises:
        ModelImportError: a weight that is not a constant 2-D matrix, a transposed input, or
            shapes that do not chain.
    """
    node = index.node(position)
    where = describe(node, position)
    attributes = _attributes(node)
    matrix = index.constant(position, 1, "weight")
    if matrix.ndim != 2:
        raise ModelImportError(
            f"{where}: its weight has shape {list(matrix.shape)}; an affine layer needs a 2-D "
            "matrix (a batched or convolutional MatMul is not an MLP layer)"
        )
    if attributes.get("transA", 0):
        raise ModelImportError(f"{where}: transA=1 transposes the features, which no MLP does")
    # Gemm computes alpha * A @ B' + beta * C; MatMul is A @ B. Stored as (out, in), like nn.Linear.
    alpha = float(attributes.get("alpha", 1.0))
    weight = (matrix if attributes.get("transB", 0) else matrix.T) * alpha
    out_width, in_width = weight.shape
    if width is not None and in_width != width:
        raise ModelImportError(
            f"{where}: its weight takes {in_width} inputs, but the layer before gives {width} "
            f"(weight shape {list(matrix.shape)})"
        )
    if node.op_type == "Gemm":
        beta = float(attributes.get("beta", 1.0))
        has_bias = len(node.input) > 2 and node.input[2]
        bias = _bias(index, position, 2, out_width, beta) if has_bias else np.zeros(out_width)
        return weight, bias, node.output[0], [position]
    bias, out, used = _matmul_bias(index, node.output[0], out_width)
    return weight, bias, out, [position, *used]
