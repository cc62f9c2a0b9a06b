"""One inference request through the protocol: decode, pick the mode, run the data plane, encode.

Request `parameters` (all optional):
    mode                "predict" (default, deterministic ONNX) or "uncertainty" (MC dropout)
    samples, seed       stochastic passes T and the dropout-mask seed (uncertainty mode)
    interval            central interval mass for `lower`/`upper` (regression; see InferParameters)
    binary_data_output  Triton's extension: every output as binary tensor data

Response `parameters` echo `mode`, and in uncertainty mode `samples`, `seed` (drawn when not
given, so any answer can be replayed), `device`, `precision`, and `interval` for regression.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import JsonValue

from service.api.v2.codec import (
    HEADER_LENGTH,
    EncodedResponse,
    OutputTensor,
    decode_features,
    decode_request,
    encode_response,
)
from service.api.v2.metadata import find_model
from service.api.v2.outputs import (
    DRAWS,
    output_specs,
    prediction_tensors,
    select_outputs,
    uncertainty_tensors,
)
from service.api.v2.schemas import InferenceRequest, InferParameters
from service.bundle import Manifest
from service.config import Settings
from service.dataplane import DataPlane, ModelRegistry, Rows
from service.errors import InvalidInputError

__all__ = ["infer"]

_MC_ONLY = ("samples", "seed", "interval")


def _features(request: InferenceRequest, binary: list[bytes | None], manifest: Manifest) -> Rows:
    expected = manifest.onnx.input_name
    described = f"'{expected}' (FP32, shape [-1, {len(manifest.features)}])"
    names = [tensor.name for tensor in request.inputs]
    if names != [expected]:
        raise InvalidInputError(
            f"model '{manifest.name}' takes one input {described}, got {names}; features go in "
            f"this order: {', '.join(manifest.features)}"
        )
    return decode_features(request.inputs[0], binary[0])


def _parameters(request: InferenceRequest) -> InferParameters:
    params = request.parameters or InferParameters()
    misplaced = [name for name in _MC_ONLY if name in params.model_fields_set]
    if params.mode == "predict" and misplaced:
        named = ", ".join(repr(name) for name in misplaced)
        raise InvalidInputError(
            f"parameter(s) {named} only apply to Monte-Carlo dropout; add "
            '"mode": "uncertainty" to the request parameters, or leave them out for a '
            "deterministic prediction"
        )
    return params


def _check_draws(names: list[str], params: InferParameters, settings: Settings) -> None:
    # The data plane enforces the same bound, but names /v1's `return_samples` in its message.
    samples = settings.default_samples if params.samples is None else params.samples
    if DRAWS in names and samples > settings.max_return_samples:
        raise InvalidInputError(
            f"output '{DRAWS}' is allowed up to {settings.max_return_samples} samples, got "
            f"{samples}; lower samples or leave '{DRAWS}' out of the outputs"
        )


def _binary_outputs(
    request: InferenceRequest, names: list[str], params: InferParameters
) -> dict[str, bool]:
    # Triton's rule: an output's own `binary_data` wins over the request's `binary_data_output`.
    binary = dict.fromkeys(names, params.binary_data_output)
    for out in request.outputs or ():
        if out.parameters is not None and out.parameters.binary_data is not None:
            binary[out.name] = out.parameters.binary_data
    return binary


async def infer(
    dataplane: DataPlane,
    registry: ModelRegistry,
    name: str,
    version: str | None,
    body: bytes,
    headers: Mapping[str, str],
) -> EncodedResponse:
    """Run one inference request body (JSON header plus any binary tensor data).

    Raises:
        RequestValidationError, InvalidInputError, PayloadTooLargeError: a bad request.
        ModelNotFoundError, NotReadyError: no such model or version, or models still loading.
    """
    settings = dataplane.settings
    decoded = decode_request(
        body, headers.get(HEADER_LENGTH), headers.get("content-encoding"), settings.max_body_bytes
    )
    request = decoded.request
    model = find_model(registry, name, version)
    manifest = model.manifest
    params = _parameters(request)
    rows = _features(request, decoded.binary, manifest)
    requested = None if request.outputs is None else [out.name for out in request.outputs]
    names = select_outputs(manifest, params.mode, requested)

    echoed: dict[str, JsonValue] = {"mode": params.mode}
    if params.mode == "predict":
        tensors = prediction_tensors(await dataplane.predict(name, model.version, rows))
    else:
        _check_draws(names, params, settings)
        result = await dataplane.uncertainty(
            name,
            model.version,
            rows,
            samples=params.samples,
            seed=params.seed,
            interval=params.interval,
            return_samples=DRAWS in names,
        )
        tensors = uncertainty_tensors(result)
        echoed.update(
            samples=result.samples,
            seed=result.seed,
            device=result.device,
            precision=result.precision,
        )
        if manifest.task == "regression":
            echoed["interval"] = result.interval

    binary = _binary_outputs(request, names, params)
    datatypes = {spec.name: spec.datatype for spec in output_specs(manifest, params.mode)}
    outputs = [OutputTensor(n, datatypes[n], tensors[n], binary[n]) for n in names]
    return encode_response(manifest.name, str(model.version), request.id, echoed, outputs)
