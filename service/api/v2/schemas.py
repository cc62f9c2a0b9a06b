"""The Open Inference Protocol's REST bodies as pydantic models.

Field names follow kserve/open-inference-protocol `inference_rest.md`; the `parameters` objects
name what dropserve reads (its own inference parameters and Triton's binary tensor data
extension). Unknown parameters are refused so that a typo such as `sample` is not silently
ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from service.dataplane.rules import DEFAULT_INTERVAL, MAX_SEED

__all__ = [
    "InferParameters",
    "InferenceRequest",
    "InferenceResponse",
    "InputParameters",
    "ModelMetadataResponse",
    "ModelReadyResponse",
    "OutputParameters",
    "RequestInput",
    "RequestOutput",
    "ResponseOutput",
    "ServerLiveResponse",
    "ServerMetadataResponse",
    "ServerReadyResponse",
    "TensorMetadata",
    "inline_schema",
]

Mode = Literal["predict", "uncertainty"]
Dimension = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InferParameters(_Strict):
    """Request-level parameters: the inference mode and Triton's `binary_data_output`."""

    mode: Mode = Field(
        "predict",
        description="predict: deterministic ONNX output. uncertainty: Monte-Carlo dropout.",
    )
    samples: int | None = Field(
        None, ge=1, strict=True, description="Stochastic passes T (uncertainty mode)."
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        strict=True,
        description="Seed of the dropout masks (uncertainty mode); omitted, one is drawn and "
        "echoed in the response parameters.",
    )
    interval: float = Field(
        DEFAULT_INTERVAL,
        gt=0.0,
        lt=1.0,
        strict=True,
        description="Central interval mass for lower/upper (regression).",
    )
    binary_data_output: bool = Field(
        False, strict=True, description="Return every output as binary tensor data."
    )


class InputParameters(_Strict):
    binary_data_size: int | None = Field(
        None, ge=0, strict=True, description="Bytes of this tensor after the JSON header."
    )
    content_type: str | None = Field(None, description="Accepted and ignored (KServe codecs).")


class OutputParameters(_Strict):
    binary_data: bool | None = Field(
        None, strict=True, description="Return this output as binary tensor data."
    )


class RequestInput(_Strict):
    name: str
    shape: list[Dimension]
    datatype: str
    parameters: InputParameters | None = None
    data: list[Any] | None = Field(
        None, description="Row-major values, flat or nested; omitted for binary tensor data."
    )


class RequestOutput(_Strict):
    name: str
    parameters: OutputParameters | None = None


class InferenceRequest(_Strict):
    """The JSON header of an inference request (binary tensor data, if any, follows it)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "inputs": [
                        {
                            "name": "features",
                            "shape": [1, 8],
                            "datatype": "FP32",
                            "data": [540.0, 0.0, 0.0, 162.0, 2.5, 1040.0, 676.0, 28.0],
                        }
                    ]
                },
                {
                    "id": "42",
                    "parameters": {"mode": "uncertainty", "samples": 200, "seed": 1},
                    "inputs": [
                        {
                            "name": "features",
                            "shape": [1, 8],
                            "datatype": "FP64",
                            "data": [[540.0, 0.0, 0.0, 162.0, 2.5, 1040.0, 676.0, 28.0]],
                        }
                    ],
                    "outputs": [{"name": "mean"}, {"name": "lower"}, {"name": "upper"}],
                },
            ]
        },
    )

    id: str | None = None
    parameters: InferParameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, JsonValue] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, JsonValue]
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 marks a variable dimension (the batch).")


class ModelMetadataResponse(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata] = Field(description="The outputs of both modes.")


class ServerMetadataResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLiveResponse(BaseModel):
    live: bool


class ServerReadyResponse(BaseModel):
    ready: bool


class ModelReadyResponse(BaseModel):
    name: str
    ready: bool


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its `$defs` inlined, to embed where `#/$defs` cannot resolve
    (an OpenAPI operation's request body). The OIP models are not recursive."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    inlined: dict[str, Any] = resolve(schema)
    return inlined
