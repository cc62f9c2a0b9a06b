"""Schemathesis against a real `dropserve serve`: every operation in the live OpenAPI schema is
fuzzed with schema-valid and schema-violating requests, and must never answer 5xx, answer only
status codes and content types its schema documents, and send bodies that match the schema.

The run is bounded and reproducible: at most MAX_EXAMPLES cases per operation and phase, drawn
in Schemathesis' deterministic mode, so a failure here fails the same way on every machine.
The admin endpoints run last, with the token, because they may unload the models.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import MODELS_DIR, Server, poll_until_ready, start_server, stop_server

TOKEN = "fuzz-admin-token"
# Per operation and phase: about 3,000 requests in all, 30-50 s on two busy cores.
MAX_EXAMPLES = 150
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
# Path parameters are mostly the real model names and version, so requests reach the engines;
# the rest stay random to exercise the 404s.
CONFIG = """
[dictionaries.models]
values = ["concrete", "digits"]

[dictionaries.versions]
values = [1]

[parameters]
"path.name" = { dictionary = "models", probability = 0.8 }
"path.version" = { dictionary = "versions", probability = 0.8 }
"""


def schemathesis_command() -> list[str]:
    script = Path(sys.executable).parent / "schemathesis"
    return [str(script)] if script.exists() else [sys.executable, "-m", "schemathesis.cli"]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("fuzz")
    models_dir = root / "models"
    shutil.copytree(MODELS_DIR, models_dir)
    env = {
        "DROPSERVE_DEVICE": "cpu",
        "DROPSERVE_ADMIN_TOKEN": TOKEN,
        "DROPSERVE_WARMUP_ROUNDS": "1",
        # Small Monte-Carlo bounds keep every valid uncertainty request cheap.
        "DROPSERVE_DEFAULT_SAMPLES": "20",
        "DROPSERVE_MAX_SAMPLES": "500",
        "DROPSERVE_MAX_ROWS": "64",
        "DROPSERVE_TORCH_THREADS": "1",
        "DROPSERVE_INFERENCE_THREADS": "2",
    }
    server = start_server(root / "dropserve.log", env, models_dir=models_dir)
    try:
        poll_until_ready(server)
        yield server
    finally:
        stop_server(server)


def operations(server: Server) -> list[str]:
    schema = httpx.get(f"{server.base_url}/openapi.json", timeout=10).json()
    return [
        f"{method.upper()} {path}"
        for path, methods in schema["paths"].items()
        for method in methods
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def fuzz(server: Server, workdir: Path, *options: str) -> dict[str, Any]:
    """Run Schemathesis once; fail with its report and the server log on any finding."""
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    report = workdir / "report.json"
    command = [
        *schemathesis_command(),
        "--config-file",
        str(config),
        "run",
        f"{server.base_url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        *options,
    ]
    completed = subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, timeout=240, check=False
    )
    output = completed.stdout + completed.stderr
    assert report.exists(), output
    summary: dict[str, Any] = json.loads(report.read_text())
    findings = {"failures": summary["failures"], "errors": summary["errors"]}
    assert completed.returncode == 0, (
        f"{json.dumps(findings, indent=1)}\n{output[-12000:]}\nserver log:\n{server.log()[-4000:]}"
    )
    assert not summary["failures"]
    assert not summary["errors"]
    return summary


def test_model_and_health_endpoints_keep_their_contract(
    fuzz_server: Server, tmp_path: Path
) -> None:
    expected = [op for op in operations(fuzz_server) if " /admin" not in op]
    summary = fuzz(fuzz_server, tmp_path, "--exclude-path-regex", "^/admin")
    assert summary["operations"]["selected"] == len(expected)
    assert summary["operations"]["tested"] == len(expected)
    assert summary["test_cases"]["generated"] >= 10 * len(expected)


def test_admin_endpoints_keep_their_contract(fuzz_server: Server, tmp_path: Path) -> None:
    expected = [op for op in operations(fuzz_server) if " /admin" in op]
    summary = fuzz(
        fuzz_server,
        tmp_path,
        "--include-path-regex",
        "^/admin",
        "--header",
        f"Authorization: Bearer {TOKEN}",
    )
    assert expected
    assert summary["operations"]["tested"] == len(expected)
