"""Bytes to tensors and back, with Triton's binary tensor data extension.

A request body is a JSON header, optionally followed by the raw bytes of every input that names
its `binary_data_size`, in input order; the `Inference-Header-Content-Length` header gives the
length of the JSON part. Binary tensors are little-endian and row-major; a BYTES element is a
4-byte little-endian length and then its bytes. Responses are framed the same way when any output
is sent as binary data.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from fastapi.exceptions import RequestValidationError
from pydantic import JsonValue, ValidationError

from service.api.v2.schemas import InferenceRequest, InferenceResponse, RequestInput, ResponseOutput
from service.dataplane import Rows
from service.errors import InvalidInputError, PayloadTooLargeError

__all__ = [
    "HEADER_LENGTH",
    "DecodedRequest",
    "EncodedResponse",
    "OutputTensor",
    "decode_features",
    "decode_request",
    "encode_response",
]

HEADER_LENGTH = "inference-header-content-length"

# Datatypes whose values are taken as features (coerced to float). BOOL, BYTES and BF16 are not.
_NUMERIC = {
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
}
_INFLATE_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


@dataclass(frozen=True)
class DecodedRequest:
    """The validated JSON header, and for each input its binary bytes (None when sent in JSON)."""

    request: InferenceRequest
    binary: list[bytes | None]


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    values: npt.NDArray[Any]
    binary: bool


@dataclass(frozen=True)
class EncodedResponse:
    body: bytes
    header_length: int | None  # the JSON length, when binary tensor data follows it


def _inflate(body: bytes, encoding: str, max_bytes: int) -> bytes:
    wbits = _INFLATE_WBITS.get(encoding.strip().lower())
    if wbits is None:
        raise InvalidInputError(
            f"Content-Encoding {encoding} is not supported; send the body uncompressed, gzip "
            "or deflate"
        )
    inflater = zlib.decompressobj(wbits)
    try:
        # One byte over the limit is enough to know it is too large, without inflating a bomb.
        plain = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise InvalidInputError(f"request body is not valid {encoding} data ({exc})") from None
    if len(plain) > max_bytes:
        raise PayloadTooLargeError(
            f"request body inflates to more than the limit of {max_bytes} bytes"
        )
    if not inflater.eof:
        raise InvalidInputError(f"request body ends before its {encoding} stream does")
    return plain


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    text = header_length.strip()
    # No body has 19 digits of bytes, and int() refuses strings past 4300 digits.
    if not text.isascii() or not text.isdigit() or len(text) > 18 or int(text) > len(body):
        raise InvalidInputError(
            f"Inference-Header-Content-Length is {header_length!r}; it must be the byte length "
            f"of the JSON header, at most the body's {len(body)} bytes"
        )
    return body[: int(text)], body[int(text) :]


def _binary_chunks(request: InferenceRequest, tail: bytes, framed: bool) -> list[bytes | None]:
    chunks: list[bytes | None] = []
    offset = 0
    for tensor in request.inputs:
        size = tensor.parameters.binary_data_size if tensor.parameters else None
        if size is None:
            chunks.append(None)
            continue
        if tensor.data is not None:
            raise InvalidInputError(
                f"input '{tensor.name}' has both data and binary_data_size; send one of them"
            )
        if not framed:
            raise InvalidInputError(
                f"input '{tensor.name}' has binary_data_size but the request has no "
                "Inference-Header-Content-Length header giving the length of the JSON part"
            )
        if offset + size > len(tail):
            raise InvalidInputError(
                f"input '{tensor.name}' declares {size} bytes of binary data but only "
                f"{len(tail) - offset} remain after the JSON header"
            )
        chunks.append(tail[offset : offset + size])
        offset += size
    if offset != len(tail):
        raise InvalidInputError(
            f"the body has {len(tail) - offset} bytes after the JSON header and the inputs' "
            "binary data; binary_data_size must account for every byte"
        )
    return chunks


def decode_request(
    body: bytes, header_length: str | None, content_encoding: str | None, max_bytes: int
) -> DecodedRequest:
    """Split, validate and frame an inference request body.

    Raises:
        RequestValidationError: the JSON header is malformed or does not fit the schema.
        InvalidInputError: inconsistent binary framing or an unsupported Content-Encoding.
        PayloadTooLargeError: a compressed body inflates past `max_bytes`.
    """
    if content_encoding and content_encoding.strip().lower() != "identity":
        body = _inflate(body, content_encoding, max_bytes)
    header, tail = _split(body, header_length)
    try:
        request = InferenceRequest.model_validate_json(header)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    return DecodedRequest(request, _binary_chunks(request, tail, header_length is not None))


def _flatten(data: Sequence[Any]) -> list[Any]:
    if not any(isinstance(value, list) for value in data):
        return list(data)
    flat: list[Any] = []
    for value in data:
        if isinstance(value, list):
            flat.extend(_flatten(value))
        else:
            flat.append(value)
    return flat


def decode_features(tensor: RequestInput, raw: bytes | None) -> Rows:
    """The data plane's rows from the feature tensor: JSON values as sent (so they are checked
    exactly like the JSON API's), binary data as a (rows, features) array.

    Raises:
        InvalidInputError: a non-numeric datatype, a shape that is not [rows, features], or data
            whose size does not match the shape.
    """
    dtype_code = _NUMERIC.get(tensor.datatype)
    if dtype_code is None:
        raise InvalidInputError(
            f"input '{tensor.name}' has datatype {tensor.datatype}; features are numbers: send "
            "FP32 (or FP64, FP16, or an INT/UINT type, converted to float)"
        )
    if len(tensor.shape) != 2:
        raise InvalidInputError(
            f"input '{tensor.name}' has shape {tensor.shape}; it must be [rows, features]"
        )
    n_rows, width = tensor.shape
    count = n_rows * width
    if raw is not None:
        dtype = np.dtype(dtype_code)
        if len(raw) != count * dtype.itemsize:
            raise InvalidInputError(
                f"input '{tensor.name}' of shape {tensor.shape} and datatype {tensor.datatype} "
                f"needs {count * dtype.itemsize} bytes of binary data, got {len(raw)}"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(n_rows, width)
    if tensor.data is None:
        raise InvalidInputError(
            f"input '{tensor.name}' has no data; send `data`, or binary tensor data with "
            "`binary_data_size`"
        )
    flat = _flatten(tensor.data)
    if len(flat) != count:
        raise InvalidInputError(
            f"input '{tensor.name}' has shape {tensor.shape} ({count} values) but its data holds "
            f"{len(flat)} values"
        )
    return [flat[r * width : (r + 1) * width] for r in range(n_rows)]


def _to_bytes(values: npt.NDArray[Any], datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for item in values.ravel().tolist():
            encoded = item.encode() if isinstance(item, str) else bytes(item)
            parts.append(struct.pack("<I", len(encoded)) + encoded)
        return b"".join(parts)
    return np.ascontiguousarray(values, dtype=np.dtype(_NUMERIC[datatype])).tobytes()


def encode_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    parameters: dict[str, JsonValue],
    outputs: Sequence[OutputTensor],
) -> EncodedResponse:
    """The response body: JSON, then the binary outputs' bytes in the order they are listed."""
    described: list[ResponseOutput] = []
    blobs: list[bytes] = []
    for tensor in outputs:
        shape = list(tensor.values.shape)
        if tensor.binary:
            blob = _to_bytes(tensor.values, tensor.datatype)
            blobs.append(blob)
            described.append(
                ResponseOutput(
                    name=tensor.name,
                    shape=shape,
                    datatype=tensor.datatype,
                    parameters={"binary_data_size": len(blob)},
                )
            )
        else:
            described.append(
                ResponseOutput(
                    name=tensor.name,
                    shape=shape,
                    datatype=tensor.datatype,
                    data=tensor.values.ravel().tolist(),
                )
            )
    header = InferenceResponse(
        model_name=model_name,
        model_version=model_version,
        id=request_id,
        parameters=parameters,
        outputs=described,
    ).model_dump_json(exclude_none=True)
    encoded = header.encode()
    if not blobs:
        return EncodedResponse(encoded, None)
    return EncodedResponse(encoded + b"".join(blobs), len(encoded))
