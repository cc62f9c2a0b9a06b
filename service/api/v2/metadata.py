"""Model lookup by the protocol's string versions, and the server and model metadata bodies."""

from __future__ import annotations

from service import __version__
from service.api.v2.outputs import output_specs
from service.api.v2.schemas import ModelMetadataResponse, ServerMetadataResponse, TensorMetadata
from service.dataplane import LoadedModel, ModelRegistry
from service.errors import ModelNotFoundError

__all__ = ["EXTENSIONS", "PLATFORM", "find_model", "model_metadata", "server_metadata"]

# `binary_tensor_data` is Triton's extension (tritonclient uses it by default);
# `mc_dropout_uncertainty` is ours: the `mode`, `samples`, `seed` and `interval` parameters.
EXTENSIONS = ("binary_tensor_data", "mc_dropout_uncertainty")
PLATFORM = "dropserve"  # ONNX Runtime for predictions and PyTorch for MC dropout, one model


def find_model(registry: ModelRegistry, name: str, version: str | None) -> LoadedModel:
    """The named model at a protocol version string (decimal), or its newest version.

    Raises:
        NotReadyError: models are still loading.
        ModelNotFoundError: no such model, or no such version (a non-number included).
    """
    if version is None:
        return registry.get(name)
    if not (version.isascii() and version.isdigit()):
        registry.get(name)  # an unknown model is reported as such first
        have = ", ".join(str(v) for v in registry.models()[name])
        raise ModelNotFoundError(
            f"model '{name}' has no version '{version}'; available versions: {have}"
        )
    return registry.get(name, int(version))


def server_metadata() -> ServerMetadataResponse:
    return ServerMetadataResponse(name="dropserve", version=__version__, extensions=[*EXTENSIONS])


def model_metadata(model: LoadedModel, versions: list[int]) -> ModelMetadataResponse:
    """One input (the ONNX input, FP32 rows of features) and the outputs of both modes."""
    manifest = model.manifest
    features = TensorMetadata(
        name=manifest.onnx.input_name, datatype="FP32", shape=[-1, len(manifest.features)]
    )
    outputs: dict[str, TensorMetadata] = {}
    for mode in ("predict", "uncertainty"):
        for spec in output_specs(manifest, mode):
            # A name in both modes (probabilities, label) has the same datatype and shape.
            outputs.setdefault(
                spec.name,
                TensorMetadata(name=spec.name, datatype=spec.datatype, shape=list(spec.shape)),
            )
    return ModelMetadataResponse(
        name=manifest.name,
        versions=[str(v) for v in versions],
        platform=PLATFORM,
        inputs=[features],
        outputs=list(outputs.values()),
    )
