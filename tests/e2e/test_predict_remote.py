"""`dropserve predict --url` against a real server answers what `--bundle` computes in process,
and `dropserve serve` on a port a dropserve server holds says so and how to reload instead."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

from tests.e2e.conftest import MODELS_DIR, Server, dropserve_command


def _concrete_csv(path: Path) -> Path:
    manifest = json.loads((MODELS_DIR / "concrete" / "1" / "manifest.json").read_text())
    rows = manifest["examples"] or [manifest["normalization"]["feature_mean"]]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(manifest["features"])
        for index in range(40):
            writer.writerow(rows[index % len(rows)])
    return path


def _predict(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    command = [*dropserve_command(), "predict", *(str(a) for a in argv), "--quiet"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_remote_scoring_equals_scoring_in_process(server: Server, tmp_path: Path) -> None:
    data = _concrete_csv(tmp_path / "rows.csv")
    options = ["--uncertainty", "--samples", "50", "--seed", "3", "--batch-rows", "16"]
    remote = _predict(
        "--url", server.base_url, "--model", "concrete", "--data", data,
        "--out", tmp_path / "remote.csv", *options,
    )  # fmt: skip
    assert remote.returncode == 0, remote.stderr
    local = _predict(
        "--bundle", MODELS_DIR / "concrete" / "1", "--data", data,
        "--out", tmp_path / "local.csv", "--device", "cpu", *options,
    )  # fmt: skip
    assert local.returncode == 0, local.stderr
    assert (tmp_path / "remote.csv").read_text() == (tmp_path / "local.csv").read_text()


def test_serving_on_a_port_a_dropserve_server_holds_says_so(server: Server) -> None:
    port = server.base_url.rsplit(":", 1)[1]
    command = [*dropserve_command(), "serve", "--port", port, "--models-dir", str(MODELS_DIR)]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in refused.stderr
    assert "a dropserve server answers there (ready): models concrete, digits" in refused.stderr
    assert "POST /admin/reload" in refused.stderr
