"""An ONNX file parsed and indexed: who produces and who consumes each tensor, and the constants.

Every refusal names the node the way a reader finds it in Netron or `onnx.helper.printable_graph`:
its name, op type and position in the node list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper
from onnx.external_data_helper import load_external_data_for_model, uses_external_data

from service.errors import ModelImportError

__all__ = ["GraphIndex", "describe", "index_graph", "parse_model"]

Float64 = npt.NDArray[np.float64]


def describe(node: onnx.NodeProto, position: int) -> str:
    """`node '/1/Gemm' (Gemm, index 3)`: how every message names a node."""
    return f"node {node.name or '(unnamed)'!r} ({node.op_type}, index {position})"


def parse_model(data: bytes, path: Path) -> onnx.ModelProto:
    """Parse the bytes of an ONNX file, with any external weight data beside it.

    Raises:
        ModelImportError: the bytes are not an ONNX model, or its external data is missing.
    """
    label = path.name
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError, from an untyped package
        raise ModelImportError(
            f"{label} is not an ONNX model: protobuf could not parse it ({exc}); pass the .onnx "
            "file an exporter wrote"
        ) from exc
    # Protobuf parses many byte strings into an empty message, so an empty graph is refused too.
    if not model.graph.node or not model.graph.output:
        raise ModelImportError(
            f"{label} is not an ONNX model: it parses, but holds no graph nodes or outputs"
        )
    # The dynamo exporter writes weights to a `<file>.data` beside the graph by default.
    if any(uses_external_data(init) for init in model.graph.initializer):
        try:
            load_external_data_for_model(model, str(path.parent))
        except (OSError, ValueError) as exc:
            raise ModelImportError(
                f"{label} keeps its weights in an external data file that cannot be read ({exc}); "
                "keep the .data file beside the .onnx file, or export with external_data=False"
            ) from exc
    return model


def _constant_node_value(node: onnx.NodeProto) -> Float64 | None:
    for attribute in node.attribute:
        if attribute.name == "value":
            return np.asarray(numpy_helper.to_array(attribute.t), dtype=np.float64)
        if attribute.name in {"value_float", "value_floats", "value_int", "value_ints"}:
            return np.asarray(onnx.helper.get_attribute_value(attribute), dtype=np.float64)
    return None


@dataclass
class GraphIndex:
    """The graph's single input and output, producers, consumers and constant tensors."""

    model: onnx.ModelProto
    input_name: str
    output_name: str
    declared_features: int | None
    constants: dict[str, Float64] = field(default_factory=dict)
    producers: dict[str, int] = field(default_factory=dict)
    consumers: dict[str, list[int]] = field(default_factory=dict)

    @property
    def nodes(self) -> list[onnx.NodeProto]:
        return list(self.model.graph.node)

    def node(self, position: int) -> onnx.NodeProto:
        node: onnx.NodeProto = self.model.graph.node[position]
        return node

    def users(self, tensor: str) -> list[int]:
        return self.consumers.get(tensor, [])

    def constant(self, position: int, slot: int, what: str) -> Float64:
        """The constant value of input `slot` of a node, or a refusal saying where it comes from."""
        node = self.node(position)
        name = node.input[slot]
        if name in self.constants:
            return self.constants[name]
        source = self.producers.get(name)
        origin = (
            f"is computed at run time by {describe(self.node(source), source)}"
            if source is not None
            else "is a graph input"
        )
        raise ModelImportError(
            f"{describe(node, position)}: its {what} {name!r} {origin}, not stored in the file; "
            "dropserve imports only networks whose weights and rates are constants"
        )


def _declared_features(value: onnx.ValueInfoProto) -> int | None:
    dims = value.type.tensor_type.shape.dim
    if len(dims) == 2 and dims[1].HasField("dim_value"):
        return int(dims[1].dim_value)
    return None


def index_graph(model: onnx.ModelProto) -> GraphIndex:
    """Index a parsed graph.

    Raises:
        ModelImportError: not one input and one output, or a node reads a tensor that nothing
            defines (a missing initializer).
    """
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    # Files from IR < 4 also list their initializers as inputs; those are not data inputs.
    inputs = [value for value in graph.input if value.name not in initializers]
    if len(inputs) != 1:
        listed = ", ".join(repr(value.name) for value in inputs) or "none"
        raise ModelImportError(
            f"the graph has {len(inputs)} data inputs ({listed}); dropserve imports a network "
            "with one input, the feature matrix"
        )
    if len(graph.output) != 1:
        listed = ", ".join(repr(value.name) for value in graph.output)
        raise ModelImportError(
            f"the graph has {len(graph.output)} outputs ({listed}); dropserve imports a chain "
            "that ends in one output"
        )
    index = GraphIndex(model, inputs[0].name, graph.output[0].name, _declared_features(inputs[0]))
    for name, init in initializers.items():
        index.constants[name] = np.asarray(numpy_helper.to_array(init), dtype=np.float64)
    defined = {index.input_name, *initializers}
    for position, node in enumerate(graph.node):
        for slot, name in enumerate(node.input):
            if not name:
                continue  # an optional input left out
            if name not in defined:
                raise ModelImportError(
                    f"{describe(node, position)}: input {slot} reads tensor {name!r}, which no "
                    "initializer, Constant node or earlier node defines (a missing initializer?)"
                )
            index.consumers.setdefault(name, []).append(position)
        for name in node.output:
            if name:
                index.producers[name] = position
                defined.add(name)
        if node.op_type == "Constant":
            value = _constant_node_value(node)
            if value is not None:
                index.constants[node.output[0]] = value
        elif node.op_type == "Identity" and node.input[0] in index.constants:
            index.constants[node.output[0]] = index.constants[node.input[0]]
    return index
