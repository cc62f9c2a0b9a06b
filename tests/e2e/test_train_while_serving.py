"""Train while the server runs: the new model answers within seconds, with no restart, signal
or admin token, in every server process (each watches the models folder for itself)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import (
    MODELS_DIR,
    dropserve_command,
    poll_until_ready,
    start_server,
    stop_server,
)
from tests.training_csv import regression_csv

FAST = ["--hidden", "16", "--epochs", "15", "--patience", "0", "--tau-samples", "30", "--quiet"]


def test_a_model_trained_beside_a_running_server_is_served(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR / "concrete", models / "concrete")
    env = {"DROPSERVE_PROCESSES": "2", "DROPSERVE_DEVICE": "cpu", "DROPSERVE_WATCH_S": "0.2"}
    server = start_server(tmp_path / "server.log", env, models_dir=models)
    try:
        poll_until_ready(server)
        csv = regression_csv(tmp_path / "mine.csv")
        command = [*dropserve_command(), "train", "--data", str(csv), "--target", "y"]
        command += ["--name", "mine", "--models-dir", str(models), "--seed", "0", *FAST]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        trained = time.monotonic()
        # A fresh connection each time, so that both processes are asked.
        answered = 0
        while answered < 10:
            assert time.monotonic() - trained < 30, server.log()
            reply = httpx.post(
                f"{server.base_url}/v1/models/mine/predict",
                json={"instances": [[0.5, -1.0, 0.2]]},
                timeout=5.0,
            )
            answered = answered + 1 if reply.status_code == 200 else 0
            time.sleep(0.05)
        assert reply.json()["version"] == 1
        assert server.log().count("added: mine/1") == 2  # each process saw it
        assert server.process.poll() is None
    finally:
        assert stop_server(server) == 0
