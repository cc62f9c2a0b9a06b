"""Parity, or no bundle: the bundle's ONNX graph against the original file, row by row."""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from service.errors import ModelImportError
from service.export import PARITY_TOLERANCE
from service.importers.network import Head, Reference

__all__ = ["check_parity"]

logger = logging.getLogger(__name__)

Float64 = npt.NDArray[np.float64]


def _head(logits: Float64, head: Head | None) -> Float64:
    if head is None:
        return logits
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs: Float64 = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return log_probs if head == "log_softmax" else np.exp(log_probs)


def check_parity(
    onnx_bytes: bytes,
    head: Head | None,
    reference: Reference,
    row_sets: list[tuple[str, Float64]],
    label: str,
) -> tuple[float, int]:
    """Largest relative error of the bundle's deterministic output, and how many rows were checked.

    The error of a row is max |bundle - original| / max(max |original|, 1), the measure
    `export_onnx` uses; the bundle's first output goes through the original's Softmax or
    LogSoftmax first, so like is compared with like.

    Raises:
        ModelImportError: some row is over the tolerance; the message names the row and values.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name
    worst = 0.0
    checked = 0
    for set_name, rows in row_sets:
        (out,) = session.run([output_name], {input_name: rows.astype(np.float32)})
        got = _head(np.asarray(out, dtype=np.float64), head)
        expected = reference(rows).reshape(got.shape)
        scale = np.maximum(np.abs(expected).max(axis=1), 1.0)
        errors = np.abs(got - expected).max(axis=1) / scale
        row = int(np.argmax(errors))
        if not errors[row] <= PARITY_TOLERANCE:
            values = ", ".join(f"{v:.6g}" for v in rows[row])
            raise ModelImportError(
                f"the bundle does not reproduce {label}: relative error {errors[row]:.3g} over "
                f"the tolerance {PARITY_TOLERANCE:g} on {set_name} row {row} ({values}): "
                f"bundle {got[row].tolist()}, original {expected[row].tolist()}; nothing was "
                "written"
            )
        worst = max(worst, float(errors[row]))
        checked += len(rows)
    logger.info("parity with %s: largest relative error %.3g on %d rows", label, worst, checked)
    return worst, checked
