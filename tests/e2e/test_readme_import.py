"""The README's "Serve a network you already trained" session runs as written: train and export
in PyTorch, import, serve, and curl both endpoints.

It is one shell session (a server started in the background), so the harvest of
`tests/e2e/test_readme.py` cannot run it; this test runs the block itself, with this
interpreter's bin folder for `.venv/bin/` and a free port for 8001.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bench.harness.load import free_port
from tests.conftest import require_program
from tests.e2e.conftest import REPO_ROOT

SECTION = "## Serve a network you already trained"


def session() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index(SECTION) :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the section has no bash block"
    return match.group(1)


def test_readme_import_session_runs_as_written(tmp_path: Path) -> None:
    require_program("curl")
    port = free_port()
    script = session().replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    script = script.replace("127.0.0.1:8001", f"127.0.0.1:{port}")
    script = script.replace("--port 8001", f"--port {port}")
    # The server runs in the background: end it (by its job's PID) whatever happens.
    wrapped = f"set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}"
    result = subprocess.run(
        ["bash", "-c", wrapped], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr
    # curl prints each answer without a newline, right after what `dropserve import` printed.
    text = result.stdout
    decoder = json.JSONDecoder()
    start = text.index("{")
    predict, end = decoder.raw_decode(text, start)
    uncertainty, _ = decoder.raw_decode(text, end)
    predicted = predict["predictions"]
    session_ = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    (expected,) = session_.run(None, {"x": np.array([[0.5, -1.0]], dtype=np.float32)})
    np.testing.assert_allclose(predicted, expected, rtol=1e-5)
    assert predicted[0][0] == pytest.approx(2.0, abs=0.3)  # y = 2u - v, near 2 at (0.5, -1)
    row = uncertainty["predictions"][0]
    assert row["lower"][0] < row["mean"][0] < row["upper"][0]
