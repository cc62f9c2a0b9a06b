"""Recognise exact GELU written out with Erf, as exporters do below opset 20.

Exporters spell 0.5 x (1 + erf(x / sqrt 2)) in several orders: torch divides by sqrt 2 and
multiplies by 0.5 last, dropserve multiplies by 1/sqrt 2, tf2onnx halves x first. Rather than
list the spellings, the small elementwise subgraph that starts at x and closes into one tensor is
collected and evaluated on probe values; it is GELU when it computes GELU.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch

from service.importers.onnx_graph import GraphIndex

__all__ = ["match_erf_gelu"]

Float64 = npt.NDArray[np.float64]

_ELEMENTWISE = {"Mul", "Div", "Add", "Sub", "Erf"}
_MAX_NODES = 8  # the longest spelling has 5 nodes; a bound keeps a runaway walk short
_PROBES = np.linspace(-5.0, 5.0, 41)


def _apply(op: str, args: list[torch.Tensor]) -> torch.Tensor:
    if op == "Erf":
        return torch.erf(args[0])
    if op == "Mul":
        return args[0] * args[1]
    if op == "Div":
        return args[0] / args[1]
    if op == "Add":
        return args[0] + args[1]
    return args[0] - args[1]


def _evaluate(index: GraphIndex, nodes: list[int], source: str, width: int) -> Float64 | None:
    values: dict[str, torch.Tensor] = {
        source: torch.as_tensor(np.repeat(_PROBES[:, None], width, axis=1))
    }
    for position in nodes:
        node = index.node(position)
        args = [
            values[name] if name in values else torch.as_tensor(index.constants[name])
            for name in node.input
        ]
        try:
            result = _apply(node.op_type, args)
        except (RuntimeError, IndexError):
            return None
        values[node.output[0]] = result
    out = values[index.node(nodes[-1]).output[0]]
    return np.asarray(out.numpy(), dtype=np.float64)


def _is_gelu(values: Float64 | None) -> bool:
    if values is None or values.shape[0] != len(_PROBES):
        return False
    erf = np.vectorize(math.erf)(_PROBES / math.sqrt(2.0))
    expected = (0.5 * _PROBES * (1.0 + erf))[:, None]
    return bool(np.allclose(values, expected, rtol=1e-5, atol=1e-6))


def match_erf_gelu(index: GraphIndex, source: str, width: int) -> tuple[str, list[int]] | None:
    """The tensor where an Erf-spelled GELU of `source` ends and its nodes, or None.

    Args:
        index: the indexed graph.
        source: the tensor the activation is applied to (an affine layer's output).
        width: that tensor's width, for per-unit constants.
    """
    nodes: list[int] = []
    inside = {source}
    while len(nodes) < _MAX_NODES:
        # Tensors of the subgraph that nodes outside it still read.
        open_ends = [t for t in inside if any(u not in nodes for u in index.users(t))]
        if len(open_ends) == 1 and open_ends[0] != source:
            end = open_ends[0]
            if any(index.node(n).op_type == "Erf" for n in nodes) and _is_gelu(
                _evaluate(index, nodes, source, width)
            ):
                return end, nodes
        ready = [
            user
            for tensor in open_ends
            for user in index.users(tensor)
            if user not in nodes
            and index.node(user).op_type in _ELEMENTWISE
            and all(name in inside or name in index.constants for name in index.node(user).input)
        ]
        if not ready:
            return None
        nodes.append(min(ready))
        inside.update(index.node(min(ready)).output)
    return None
