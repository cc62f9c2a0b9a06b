"""The bad-input table: malformed requests of every kind, each answered with the right 4xx and a
message that says what is wrong (never a 500, never a 200 with nonsense in it).

Rows go to the toy models of tests/integration/conftest.py (`toyreg`: features x0, x1, x2;
limits 50 rows, 5000 samples, 20000 rows x samples). /v1 answers 422 for content that does not
fit, /v2 (the Open Inference Protocol) 400.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

PREDICT = "/v1/models/toyreg/versions/1/predict"
UNCERTAINTY = "/v1/models/toyreg/versions/1/uncertainty"
INFER = "/v2/models/toyreg/versions/1/infer"
JSON = {"content-type": "application/json"}
HEADER_LENGTH = "Inference-Header-Content-Length"
TEN_MB = 10 * 1024 * 1024
DEEP = 100_000


@dataclass(frozen=True)
class Bad:
    """One malformed request and the answer it must get."""

    path: str
    body: bytes | Callable[[], Iterator[bytes]]
    status: int
    needle: str
    headers: Mapping[str, str | bytes] = field(default_factory=lambda: JSON)


def rows(instances: str, extra: str = "") -> bytes:
    """A /v1 body with `instances` spliced in as raw JSON text (so NaN and 1e400 survive)."""
    return f'{{"instances": {instances}{extra}}}'.encode()


def tensor(data: str = "[1, 2, 3]", shape: str = "[1, 3]", **fields: Any) -> dict[str, Any]:
    return {"name": "features", "shape": json.loads(shape), "datatype": "FP32", **fields} | (
        {"data": "@DATA@"} if data else {}
    )


def infer(
    data: str = "[1, 2, 3]", parameters: dict[str, Any] | None = None, **fields: Any
) -> bytes:
    """A /v2 JSON body whose data is spliced in as raw JSON text."""
    request: dict[str, Any] = {"inputs": [tensor(data, **fields)]}
    if parameters is not None:
        request["parameters"] = parameters
    return json.dumps(request).replace('"@DATA@"', data).encode()


def binary(
    size: Any, blob: bytes, datatype: str = "FP32", length: str | bytes | None = None
) -> Bad:
    """A /v2 binary-tensor request whose JSON header declares `size` bytes and `blob` follows."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [1, 3],
                    "datatype": datatype,
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    ).encode()
    headers = {
        HEADER_LENGTH: str(len(header)) if length is None else length,
        "content-type": "application/octet-stream",
    }
    return Bad(INFER, header + blob, 400, "", headers)


def expect(bad: Bad, status: int, needle: str) -> Bad:
    return Bad(bad.path, bad.body, status, needle, bad.headers)


def ten_mb_streamed() -> Iterator[bytes]:
    """No Content-Length: the body arrives in chunks and crosses the limit on the way."""
    yield b'{"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": ['
    chunk = b"1.0, " * 200_000
    for _ in range(TEN_MB // len(chunk) + 1):
        yield chunk
    yield b"1.0]}]}"


FP32_ROW = struct.pack("<3f", 1.0, 2.0, 3.0)
INPUT_RANGE = "the feature values are far outside the range the model was trained on"

CASES = [
    # Wrong types.
    pytest.param(
        Bad(PREDICT, rows('"abc"'), 422, "'instances': Input should be a valid list"),
        id="types-instances-string",
    ),
    pytest.param(
        Bad(PREDICT, rows('{"x0": 1}'), 422, "'instances': Input should be a valid list"),
        id="types-instances-object",
    ),
    pytest.param(
        Bad(PREDICT, rows('["1,2,3"]'), 422, "instances[0] must be a list of 3 numbers or an"),
        id="types-row-string",
    ),
    pytest.param(
        Bad(PREDICT, rows('[[1, "2", 3]]'), 422, "feature 'x1': value must be a number, got '2'"),
        id="types-value-string",
    ),
    pytest.param(
        Bad(PREDICT, rows("[[true, 2, 3]]"), 422, "feature 'x0': value must be a number, got true"),
        id="types-value-bool",
    ),
    pytest.param(
        Bad(PREDICT, rows("[[1, 2, null]]"), 422, "feature 'x2': value must be a number, got null"),
        id="types-value-null",
    ),
    pytest.param(
        Bad(PREDICT, b"null", 422, "Input should be a valid dictionary"), id="types-body-null"
    ),
    pytest.param(
        Bad(UNCERTAINTY, rows("[[1, 2, 3]]", ', "samples": 10.5'), 422, "'samples': Input should"),
        id="types-samples-fractional",
    ),
    pytest.param(
        Bad(INFER, infer(datatype=32), 400, "'inputs[0].datatype': Input should be a valid string"),
        id="types-v2-datatype-number",
    ),
    # Nested garbage.
    pytest.param(
        Bad(
            PREDICT,
            rows('[[{"a": [1, {"b": null}]}, 2, 3]]'),
            422,
            "feature 'x0': value must be a number, got {'a': [1, {'b': None}]}",
        ),
        id="nested-object-as-value",
    ),
    pytest.param(
        Bad(
            PREDICT,
            rows('[{"x0": [1], "x1": {"y": 2}, "x2": 3}]'),
            422,
            "feature 'x0': value must be a number, got [1]",
        ),
        id="nested-values-in-keyed-row",
    ),
    pytest.param(
        Bad(PREDICT, rows("[[[1, 2, 3]]]"), 422, "instances[0] has 1 values but the model expects"),
        id="nested-row-in-row",
    ),
    pytest.param(
        Bad(INFER, infer('[[1, [2, [3, {"a": 1}]]]]'), 400, "but its data holds 4 values"),
        id="nested-v2-data",
    ),
    # Huge numbers.
    pytest.param(Bad(PREDICT, rows("[[1, 1e308, 3]]"), 422, INPUT_RANGE), id="huge-float-predict"),
    pytest.param(
        Bad(UNCERTAINTY, rows("[[1, 2, -1.7e308]]"), 422, INPUT_RANGE),
        id="huge-float-uncertainty",
    ),
    pytest.param(Bad(INFER, infer("[1, 2, 1e308]"), 400, INPUT_RANGE), id="huge-float-v2-predict"),
    pytest.param(
        Bad(
            INFER,
            infer("[1, 2, 1e25]", {"mode": "uncertainty", "samples": 10, "seed": 1}),
            400,
            "beyond the FP32 range of the protocol's tensors",
        ),
        id="huge-v2-uncertainty-output",
    ),
    pytest.param(
        Bad(
            PREDICT,
            rows(f"[[1, 2, {'9' * 400}]]"),
            422,
            "feature 'x2': value must be a finite number, got an integer too large",
        ),
        id="huge-integer-400-digits",
    ),
    pytest.param(
        Bad(INFER, infer(f"[1, 2, {'9' * 400}]"), 400, "got an integer too large for a 64-bit"),
        id="huge-integer-v2",
    ),
    pytest.param(
        Bad(PREDICT, rows(f"[[1, 2, {'9' * 5000}]]"), 400, "request body could not be parsed"),
        id="huge-integer-past-parsing",
    ),
    pytest.param(
        Bad(PREDICT, rows("[[1, 2, 1e400]]"), 422, "value must be a finite number, got inf"),
        id="huge-float-literal-overflows",
    ),
    pytest.param(
        Bad(INFER, infer(shape=f"[{'9' * 30}, 3]"), 400, "but its data holds 3 values"),
        id="huge-v2-shape",
    ),
    # NaN and Infinity, as strings and as bare tokens.
    pytest.param(
        Bad(
            PREDICT, rows('[[1, "NaN", 3]]'), 422, "feature 'x1': value must be a number, got 'NaN'"
        ),
        id="nonfinite-string-nan",
    ),
    pytest.param(
        Bad(PREDICT, rows('[[1, 2, "Infinity"]]'), 422, "value must be a number, got 'Infinity'"),
        id="nonfinite-string-infinity",
    ),
    pytest.param(
        Bad(UNCERTAINTY, rows('[["-Infinity", 2, 3]]'), 422, "got '-Infinity'"),
        id="nonfinite-string-minus-infinity",
    ),
    pytest.param(
        Bad(PREDICT, rows("[[1, NaN, 3]]"), 422, "feature 'x1': value must be a finite number"),
        id="nonfinite-bare-nan",
    ),
    pytest.param(
        Bad(PREDICT, rows("[[Infinity, 2, 3]]"), 422, "value must be a finite number, got inf"),
        id="nonfinite-bare-infinity",
    ),
    pytest.param(
        Bad(UNCERTAINTY, rows("[[1, 2, -Infinity]]"), 422, "must be a finite number, got -inf"),
        id="nonfinite-bare-minus-infinity",
    ),
    pytest.param(
        Bad(UNCERTAINTY, rows("[[1, 2, 3]]", ', "interval": NaN'), 422, "'interval': Input"),
        id="nonfinite-bare-nan-interval",
    ),
    pytest.param(
        Bad(INFER, infer("[1, NaN, 3]"), 400, "feature 'x1': value must be a finite number"),
        id="nonfinite-v2-bare-nan",
    ),
    pytest.param(
        Bad(INFER, infer('[1, "Infinity", 3]'), 400, "value must be a number, got 'Infinity'"),
        id="nonfinite-v2-string-infinity",
    ),
    # Empty bodies.
    pytest.param(Bad(PREDICT, b"", 400, "request body is missing"), id="empty-body"),
    pytest.param(
        Bad(UNCERTAINTY, b"", 400, "request body is missing"), id="empty-body-uncertainty"
    ),
    pytest.param(Bad(INFER, b"", 400, "request body is not valid JSON"), id="empty-body-v2"),
    pytest.param(Bad(PREDICT, b"{}", 422, "'instances' is required"), id="empty-object"),
    # 10 MB bodies (the limit is 8 MiB).
    pytest.param(
        Bad(PREDICT, b" " * TEN_MB, 413, "exceeds the limit of 8388608 bytes"),
        id="size-10mb-declared",
    ),
    pytest.param(
        Bad(INFER, ten_mb_streamed, 413, "exceeds the limit of 8388608 bytes"),
        id="size-10mb-streamed",
    ),
    # Deeply nested JSON.
    pytest.param(
        Bad(PREDICT, rows("[" * DEEP + "]" * DEEP), 400, "request body could not be parsed"),
        id="deep-arrays",
    ),
    pytest.param(
        Bad(
            PREDICT,
            ('{"a": ' * DEEP + "1" + "}" * DEEP).encode(),
            400,
            "request body could not be parsed",
        ),
        id="deep-objects",
    ),
    pytest.param(
        Bad(INFER, infer("[" * DEEP + "]" * DEEP), 400, "recursion limit exceeded"),
        id="deep-v2",
    ),
    # Unicode feature names.
    pytest.param(
        Bad(
            PREDICT,
            rows('[{"x0": 1, "x1": 2, "\uff582": 3}]'),
            422,
            "instances[0] has unknown feature(s) '\uff582'; expected: x0, x1, x2",
        ),
        id="unicode-fullwidth-name",
    ),
    pytest.param(
        Bad(PREDICT, rows('[{"x0": 1, "x1": 2, "x2": 3, "\U0001f642": 4}]'), 422, "'\U0001f642'"),
        id="unicode-emoji-name",
    ),
    pytest.param(
        Bad(PREDICT, rows('[{"x0": 1, "x1": 2, "\\ud800": 3}]'), 422, "unknown feature(s)"),
        id="unicode-lone-surrogate-name",
    ),
    pytest.param(
        Bad(PREDICT, rows('[{"x0": 1, "x1": 2, "x2\\u0000": 3}]'), 422, "'x2\\x00'"),
        id="unicode-nul-in-name",
    ),
    pytest.param(
        Bad(
            PREDICT,
            rows('[{"x0": 1, "x1": 2, "x\u0302": 3}]'),
            422,
            "has unknown feature(s) 'x\u0302'",
        ),
        id="unicode-combining-mark",
    ),
    pytest.param(
        Bad(INFER, infer(name="\uff46eatures"), 400, "takes one input 'features'"),
        id="unicode-v2-input-name",
    ),
    # Duplicate keys: the last one wins, as in every mainstream JSON parser, and is checked.
    pytest.param(
        Bad(PREDICT, b'{"instances": [[1, 2, 3]], "instances": []}', 422, "instances is empty"),
        id="duplicate-top-level-key",
    ),
    pytest.param(
        Bad(
            PREDICT,
            rows('[{"x0": 1, "x1": 2, "x2": 3, "x2": "three"}]'),
            422,
            "feature 'x2': value must be a number, got 'three'",
        ),
        id="duplicate-feature-name",
    ),
    pytest.param(
        Bad(
            INFER,
            infer().replace(b"]}", b'], "inputs": []}'),
            400,
            "'inputs': List should have at least 1 item",
        ),
        id="duplicate-v2-key",
    ),
    # samples: negative, zero, huge.
    pytest.param(
        Bad(UNCERTAINTY, rows("[[1, 2, 3]]", ', "samples": -1'), 422, "'samples': Input should be"),
        id="samples-negative",
    ),
    pytest.param(
        Bad(UNCERTAINTY, rows("[[1, 2, 3]]", ', "samples": 0'), 422, "greater than or equal to 1"),
        id="samples-zero",
    ),
    pytest.param(
        Bad(
            UNCERTAINTY,
            rows("[[1, 2, 3]]", f', "samples": {10**30}'),
            422,
            # orjson reads a 31-digit integer as the float 1e30, which the strict int refuses
            "'samples': Input should be a valid integer",
        ),
        id="samples-huge",
    ),
    # Strict types on both protocols: nothing is coerced from a string, a bool or a float.
    pytest.param(
        Bad(
            UNCERTAINTY,
            rows("[[1, 2, 3]]", ', "samples": "100"'),
            422,
            "'samples': Input should be a valid integer",
        ),
        id="strict-samples-string",
    ),
    pytest.param(
        Bad(
            UNCERTAINTY,
            rows("[[1, 2, 3]]", ', "samples": true'),
            422,
            "'samples': Input should be a valid integer",
        ),
        id="strict-samples-bool",
    ),
    pytest.param(
        Bad(
            UNCERTAINTY,
            rows("[[1, 2, 3]]", ', "samples": 100.0'),
            422,
            "'samples': Input should be a valid integer",
        ),
        id="strict-samples-float",
    ),
    pytest.param(
        Bad(
            UNCERTAINTY,
            rows("[[1, 2, 3]]", ', "return_samples": "yes"'),
            422,
            "'return_samples': Input should be a valid boolean",
        ),
        id="strict-return-samples-string",
    ),
    pytest.param(
        Bad(
            UNCERTAINTY,
            rows("[[1, 2, 3]]", ', "interval": "0.9"'),
            422,
            "'interval': Input should be a valid number",
        ),
        id="strict-interval-string",
    ),
    pytest.param(
        Bad(
            UNCERTAINTY,
            rows("[[1, 2, 3]]", ', "seed": "7"'),
            422,
            "'seed': Input should be a valid integer",
        ),
        id="strict-seed-string",
    ),
    pytest.param(
        Bad(
            INFER,
            infer(parameters={"mode": "uncertainty", "interval": "0.9"}),
            400,
            "'parameters.interval': Input should be a valid number",
        ),
        id="strict-v2-interval-string",
    ),
    pytest.param(
        Bad(
            UNCERTAINTY,
            rows("[[1, 2, 3]]", f', "samples": {10**12}'),
            422,
            "samples must be between 1 and 5000",
        ),
        id="samples-large",
    ),
    pytest.param(
        Bad(
            UNCERTAINTY,
            rows("[[1, 2, 3]]", ', "samples": 5000, "return_samples": true'),
            422,
            "return_samples is allowed up to 100 samples",
        ),
        id="samples-huge-returned",
    ),
    pytest.param(
        Bad(
            UNCERTAINTY,
            rows("[" + ", ".join(["[1, 2, 3]"] * 5) + "]", ', "samples": 5000'),
            422,
            "rows x samples = 5 x 5000 = 25000 exceeds the limit of 20000",
        ),
        id="samples-over-the-work-bound",
    ),
    pytest.param(
        Bad(
            INFER,
            infer(parameters={"mode": "uncertainty", "samples": -5}),
            400,
            "'parameters.samples'",
        ),
        id="samples-v2-negative",
    ),
    pytest.param(
        Bad(
            INFER,
            infer(parameters={"mode": "uncertainty", "samples": 10**30}),
            400,
            "samples must be between 1 and 5000",
        ),
        id="samples-v2-huge",
    ),
    # Wrong content types (/v1 takes JSON only).
    pytest.param(
        Bad(PREDICT, rows("[[1, 2, 3]]"), 415, "got text/plain", {"content-type": "text/plain"}),
        id="content-type-text",
    ),
    pytest.param(
        Bad(
            PREDICT,
            b"<instances/>",
            415,
            "Content-Type must be application/json, got application/xml",
            {"content-type": "application/xml"},
        ),
        id="content-type-xml",
    ),
    pytest.param(
        Bad(
            UNCERTAINTY,
            b"instances=1",
            415,
            "got application/x-www-form-urlencoded",
            {"content-type": "application/x-www-form-urlencoded"},
        ),
        id="content-type-form",
    ),
    pytest.param(
        Bad(
            PREDICT,
            b"--x\r\n\r\n--x--",
            415,
            "got multipart/form-data",
            {"content-type": "multipart/form-data; boundary=x"},
        ),
        id="content-type-multipart",
    ),
    pytest.param(Bad(PREDICT, rows("[[1, 2, 3]]"), 415, "got none", {}), id="content-type-missing"),
    # Open Inference Protocol binary tensor data whose sizes lie.
    pytest.param(
        expect(binary(16, FP32_ROW), 400, "declares 16 bytes of binary data but only 12 remain"),
        id="binary-size-too-large",
    ),
    pytest.param(
        expect(binary(8, FP32_ROW), 400, "the body has 4 bytes after the JSON header"),
        id="binary-size-too-small",
    ),
    pytest.param(
        expect(binary(8, FP32_ROW[:8]), 400, "needs 12 bytes of binary data, got 8"),
        id="binary-size-disagrees-with-shape",
    ),
    pytest.param(
        expect(binary(-1, FP32_ROW), 400, "binary_data_size': Input should be greater than or"),
        id="binary-size-negative",
    ),
    pytest.param(
        expect(binary(10**30, FP32_ROW), 400, f"declares {10**30} bytes of binary data"),
        id="binary-size-huge",
    ),
    pytest.param(
        expect(binary("12", FP32_ROW), 400, "binary_data_size': Input should be a valid integer"),
        id="binary-size-string",
    ),
    pytest.param(
        expect(binary(12, FP32_ROW, length="99999"), 400, "at most the body's"),
        id="binary-header-length-past-the-body",
    ),
    pytest.param(
        expect(binary(12, FP32_ROW, length="20"), 400, "request body is not valid JSON"),
        id="binary-header-length-inside-the-json",
    ),
    pytest.param(
        expect(binary(12, FP32_ROW, length="-5"), 400, "Inference-Header-Content-Length is '-5'"),
        id="binary-header-length-negative",
    ),
    pytest.param(
        expect(binary(12, FP32_ROW, length="9" * 5000), 400, "Inference-Header-Content-Length is"),
        id="binary-header-length-5000-digits",
    ),
    pytest.param(
        expect(binary(12, FP32_ROW, length="\u0663".encode()), 400, "it must be the byte length"),
        id="binary-header-length-arabic-digit",
    ),
    pytest.param(
        expect(binary(12, FP32_ROW, length="twelve"), 400, "Inference-Header-Content-Length is"),
        id="binary-header-length-not-a-number",
    ),
    pytest.param(
        expect(
            binary(6, struct.pack("<3e", 1.0, 2.0, float("inf")), datatype="FP16"),
            400,
            "feature 'x2': value must be a finite number, got inf",
        ),
        id="binary-fp16-infinity",
    ),
    pytest.param(
        expect(binary(4, b"\x00" * 4, datatype="BYTES"), 400, "has datatype BYTES; features are"),
        id="binary-bytes-datatype",
    ),
]


@pytest.mark.parametrize("bad", CASES)
def test_bad_input_is_a_4xx_with_a_message(client: TestClient, bad: Bad) -> None:
    content = bad.body() if callable(bad.body) else bad.body
    response = client.post(bad.path, content=content, headers=dict(bad.headers))
    assert response.status_code == bad.status, response.text
    message = response.json()["error"]
    assert bad.needle in message, message
    assert "internal server error" not in message


def test_the_table_covers_every_kind_of_bad_input() -> None:
    kinds = {str(case.id).split("-")[0] for case in CASES}
    assert kinds == {
        "types",
        "nested",
        "huge",
        "nonfinite",
        "empty",
        "size",
        "deep",
        "unicode",
        "duplicate",
        "samples",
        "strict",
        "content",
        "binary",
    }
    assert len(CASES) >= 30


def test_the_server_is_still_well_after_the_table(client: TestClient) -> None:
    assert client.get("/health/ready").status_code == 200
    response = client.post(PREDICT, json={"instances": [[1.0, 2.0, 3.0]]})
    assert response.status_code == 200


def _numbers(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    else:
        yield value


@pytest.mark.parametrize(
    "extra",
    [
        # 1 - (1 - interval) / 2 rounds to 1.0: the upper bound once came back as null.
        {"interval": 0.9999999999999999, "samples": 200},
        {"interval": 5e-324},
        {"samples": 1, "return_samples": True},
    ],
    ids=["interval-next-to-one", "interval-smallest", "one-sample"],
)
def test_extreme_but_valid_parameters_answer_finite_numbers(
    client: TestClient, extra: dict[str, Any]
) -> None:
    response = client.post(UNCERTAINTY, json={"instances": [[1.0, 2.0, 3.0]], "seed": 7, **extra})
    assert response.status_code == 200, response.text
    prediction = response.json()["predictions"][0]
    assert None not in list(_numbers(prediction)), prediction
    assert prediction["lower"][0] <= prediction["upper"][0]
