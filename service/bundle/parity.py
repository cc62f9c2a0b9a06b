"""Load-time parity: the Monte-Carlo path's deterministic pass must reproduce the ONNX graph.

The graph has the standardisation folded into its weights while the Monte-Carlo engine applies
the manifest's statistics to the safetensors network, so a manifest or weights file that does
not belong to the graph would make `predict` and `uncertainty` disagree. The export proves the
two agree before it writes a bundle; the load proves it again on the rows the manifest carries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from service.bundle.manifest import ONNX_FILE, Manifest
from service.errors import BundleError
from service.export import torch_eval
from service.model import DropoutMLP

__all__ = ["check_parity", "parity_rows"]


def parity_rows(manifest: Manifest) -> npt.NDArray[np.float64]:
    """The manifest's example rows, or its feature means as one row when it has none."""
    rows = manifest.examples or [manifest.normalization.feature_mean]
    return np.asarray(rows, dtype=np.float64)


def _onnx_outputs(
    path: Path, manifest: Manifest, onnx_bytes: bytes, rows: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    info = manifest.onnx
    try:
        session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        (out,) = session.run([info.output_names[0]], {info.input_name: rows.astype(np.float32)})
    except Exception as exc:  # ORT raises its own exception types, with no common base
        raise BundleError(
            f"{path / ONNX_FILE}: ONNX Runtime cannot run the graph with the manifest's input "
            f"and outputs ({type(exc).__name__}); export the bundle again"
        ) from exc
    return np.asarray(out, dtype=np.float64)


def check_parity(path: Path, manifest: Manifest, network: DropoutMLP, onnx_bytes: bytes) -> float:
    """Compare ONNX Runtime with PyTorch eval (through the manifest's standardisation).

    Returns:
        The relative error, max |onnx - torch| / max(max |torch|, 1), as the export measures it.

    Raises:
        BundleError: the error exceeds the manifest's parity tolerance; the message gives both
            outputs at the worst row.
    """
    rows = parity_rows(manifest)
    expected = torch_eval(network, manifest.standardizer(), rows).astype(np.float64)
    got = _onnx_outputs(path, manifest, onnx_bytes, rows)
    if got.shape != expected.shape:
        raise BundleError(
            f"{path / ONNX_FILE}: the graph answers shape {got.shape} where the network answers "
            f"{expected.shape}; the graph does not belong to these weights, export it again"
        )
    difference = np.abs(got - expected)
    scale = max(float(np.abs(expected).max()), 1.0)
    error = float(difference.max()) / scale
    tolerance = manifest.onnx.parity_tolerance
    if not error <= tolerance:  # also refuses NaN
        row, column = np.unravel_index(
            int(np.argmax(np.nan_to_num(difference, nan=np.inf))), difference.shape
        )
        source = "example row" if manifest.examples else "the feature means, row"
        raise BundleError(
            f"{path}: the ONNX graph answers {got[row, column]:.6g} and the Monte-Carlo "
            f"network in eval mode {expected[row, column]:.6g} for output "
            f"'{manifest.output_names[column]}' on {source} {row} (relative error {error:.3g}, "
            f"tolerance {tolerance:g}); the manifest's normalization or the weights do not "
            "belong to the graph. Restore the bundle as it was saved, or train or export it again"
        )
    return error
