"""Re-export a bundle's ONNX graph from its safetensors weights, as a new version.

Versions are immutable (a running server may hold version N open), so the re-export is saved as
version N+1 of the same name: same weights, normalisation, tau, metrics and training record; a
fresh ONNX graph, parity check and library versions. Use it after an upgrade of onnx or of the
exporter.
"""

from __future__ import annotations

import logging
from pathlib import Path

from service.bundle import Manifest, load_bundle, save_bundle
from service.export import export_onnx
from service.training.provenance import library_versions, onnx_fields

__all__ = ["reexport_bundle"]

logger = logging.getLogger(__name__)


def reexport_bundle(path: Path, *, seed: int = 0) -> Manifest:
    """Load and verify the bundle at `path`, export ONNX again and save it as a new version.

    Args:
        path: a bundle folder, `<models_dir>/<name>/<version>`.
        seed: seeds the random rows of the parity check.

    Returns:
        The new manifest; the bundle lies in `path.parent / str(version)`.

    Raises:
        BundleError: the source bundle is missing files, fails a checksum or has a bad manifest.
        ExportError: the new ONNX graph does not reproduce PyTorch within tolerance.
    """
    source = load_bundle(path)
    manifest = source.manifest
    exported = export_onnx(source.network, manifest.standardizer(), name=manifest.name, seed=seed)
    fields = manifest.model_dump(mode="json", exclude={"version", "files", "created_at"})
    fields["onnx"] = onnx_fields(exported)
    fields["library_versions"] = library_versions()
    saved = save_bundle(path.parent.parent, fields, source.network, exported.onnx_bytes)
    logger.info(
        "re-exported %s version %d as version %d (parity error %.3g)",
        manifest.name,
        manifest.version,
        saved.version,
        exported.parity_max_error,
    )
    return saved
