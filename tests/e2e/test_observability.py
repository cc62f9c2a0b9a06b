"""A real server with DROPSERVE_LOG_FORMAT=json: every line of its output (uvicorn's included) is
JSON, one access line per request, and /metrics scrapes over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import poll_until_ready, start_server, stop_server
from tests.factories import make_bundle

TOKEN = "e2e-admin-token-never-logged"
ROW = [321.987654, 654.321987, 111.222333]


def test_json_logs_and_metrics_of_a_real_server(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    make_bundle(models_dir, name="toyreg", seed=1)
    env = {
        "DROPSERVE_LOG_FORMAT": "json",
        "DROPSERVE_ADMIN_TOKEN": TOKEN,
        "DROPSERVE_WARMUP_ROUNDS": "1",
        "DROPSERVE_DEVICE": "cpu",
    }
    server = start_server(tmp_path / "server.log", env, models_dir=models_dir)
    try:
        poll_until_ready(server)
        with httpx.Client(base_url=server.base_url, timeout=60.0) as client:
            headers = {"X-Request-ID": "e2e-1"}
            body = {"instances": [ROW]}
            predicted = client.post("/v1/models/toyreg/predict", json=body, headers=headers)
            assert predicted.headers["x-request-id"] == "e2e-1"
            wrong = client.post("/admin/reload", headers={"Authorization": "Bearer nope-123"})
            assert wrong.status_code == 401
            assert wrong.json()["request_id"] == wrong.headers["x-request-id"]
            scraped = client.get("/metrics").text
    finally:
        assert stop_server(server) == 0
    families = {f.name: f for f in text_string_to_metric_families(scraped)}
    (sample,) = [
        s
        for s in families["dropserve_http_requests"].samples
        if s.name.endswith("_total") and s.labels["endpoint"] == "/v1/models/{name}/predict"
    ]
    assert (sample.labels["model"], sample.labels["status"], sample.value) == ("toyreg", "200", 1)

    text = server.log()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    loggers = {line["logger"] for line in lines}
    assert "uvicorn.error" in loggers  # uvicorn's own lines go through the same formatter
    assert "uvicorn.access" not in loggers  # replaced by the app's access line
    access = [line for line in lines if line["logger"] == "service.observability.access"]
    (line,) = [a for a in access if a["request_id"] == "e2e-1"]
    assert (line["path"], line["status"], line["model"], line["rows"]) == (
        "/v1/models/{name}/predict",
        200,
        "toyreg",
        1,
    )
    assert any(a["status"] == 401 and a["path"] == "/admin/reload" for a in access)
    for secret in (TOKEN, "nope-123", "321.987654", "654.321987", "111.222333"):
        assert secret not in text
