"""Run the original ONNX file in ONNX Runtime: the reference an imported bundle must reproduce.

Two edits make the original deterministic and comparable, and nothing else is touched: Dropout
nodes lose their `training_mode` input (exporters in train mode set it, and ONNX Runtime would
then draw masks), and for the classic style each affine layer's input is scaled by its keep
probability (the weight-scaling rule, which ONNX has no op for).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper

from service.errors import ModelImportError
from service.importers.network import Reference

__all__ = ["onnx_reference"]


def _deterministic(model: onnx.ModelProto, keeps: list[tuple[int, float]]) -> onnx.ModelProto:
    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    nodes = edited.graph.node
    for node in nodes:
        if node.op_type == "Dropout" and len(node.input) > 2:
            del node.input[2:]
    for position, keep in keeps:
        node = nodes[position]
        scaled = f"{node.input[0]}__dropserve_keep{position}"
        factor = f"{scaled}_factor"
        edited.graph.initializer.append(
            numpy_helper.from_array(np.array(keep, dtype=np.float32), factor)
        )
        mul = helper.make_node("Mul", [node.input[0], factor], [scaled])
        node.input[0] = scaled
        nodes.insert(position, mul)  # in place keeps the list topologically sorted
    return edited


def _opsets(model: onnx.ModelProto) -> str:
    return ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)


def onnx_reference(model: onnx.ModelProto, keeps: list[tuple[int, float]], label: str) -> Reference:
    """A function from raw float64 rows to the original graph's float64 output.

    Args:
        model: the parsed original.
        keeps: (affine node position, keep probability) pairs to scale in front of (classic
            style); empty for the inverted style.
        label: the file's name, for messages.

    Raises:
        ModelImportError: ONNX Runtime cannot load the graph (an opset it does not know, say).
    """
    import onnxruntime as ort

    # Insert from the back so that earlier positions stay valid.
    edited = _deterministic(model, sorted(keeps, reverse=True))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            edited.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ORT raises its own untyped exceptions for every load failure
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelImportError(
            f"ONNX Runtime {ort.__version__} cannot run {label} (opsets: {_opsets(model)}): "
            f"{first_line}; re-export it with an opset this ONNX Runtime supports, e.g. "
            "torch.onnx.export(..., opset_version=17)"
        ) from exc
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name

    def run(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        (out,) = session.run([output_name], {input_name: rows.astype(np.float32)})
        return np.asarray(out, dtype=np.float64)

    return run
