"""Model bundles on disk: `models/<name>/<version>/` with manifest, ONNX graph and weights."""

from service.bundle.files import DEFAULT_MAX_FILE_BYTES, ReadPolicy
from service.bundle.manifest import (
    MANIFEST_FILE,
    ONNX_FILE,
    WEIGHTS_FILE,
    Architecture,
    ImportInfo,
    Manifest,
    Normalization,
    OnnxInfo,
    TrainingInfo,
)
from service.bundle.store import (
    Bundle,
    discover,
    load_bundle,
    next_version,
    save_bundle,
    sign_bundle,
    verify_bundle,
)

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "MANIFEST_FILE",
    "ONNX_FILE",
    "WEIGHTS_FILE",
    "Architecture",
    "Bundle",
    "ImportInfo",
    "Manifest",
    "Normalization",
    "OnnxInfo",
    "ReadPolicy",
    "TrainingInfo",
    "discover",
    "load_bundle",
    "next_version",
    "save_bundle",
    "sign_bundle",
    "verify_bundle",
]
