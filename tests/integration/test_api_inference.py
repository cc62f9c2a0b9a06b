"""The two inference endpoints: deterministic ONNX predictions and MC-dropout summaries."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.bundle import load_bundle
from service.engines.precision import cpu_has_native_bf16
from service.export import torch_eval
from tests.factories import make_bundle
from tests.integration.conftest import make_client

ROWS = [[0.5, -1.0, 2.0], [3.0, 1.5, -0.5], [-2.0, 0.0, 1.0]]


def test_predict_matches_pytorch_eval(client: TestClient, toy_models_dir: Path) -> None:
    body = client.post("/v1/models/toyreg/versions/1/predict", json={"instances": ROWS}).json()
    assert (body["model"], body["version"], body["task"]) == ("toyreg", 1, "regression")
    assert body["outputs"] == ["y0"]
    bundle = load_bundle(toy_models_dir / "toyreg" / "1")
    expected = torch_eval(bundle.network, bundle.manifest.standardizer(), np.asarray(ROWS))
    np.testing.assert_allclose(np.asarray(body["predictions"]), expected, rtol=1e-5, atol=1e-5)


def test_predict_defaults_to_the_newest_version(client: TestClient) -> None:
    body = client.post("/v1/models/toyreg/predict", json={"instances": ROWS}).json()
    assert body["version"] == 2
    assert np.asarray(body["predictions"]).shape == (3, 2)


def test_rows_as_objects_equal_rows_as_lists(client: TestClient) -> None:
    as_lists = client.post("/v1/models/toyreg/predict", json={"instances": ROWS}).json()
    objects = [{"x2": r[2], "x0": r[0], "x1": r[1]} for r in ROWS]
    as_objects = client.post("/v1/models/toyreg/predict", json={"instances": objects}).json()
    assert as_objects["predictions"] == as_lists["predictions"]


def test_classification_predict_has_label_and_probabilities(client: TestClient) -> None:
    body = client.post("/v1/models/toycls/predict", json={"instances": ROWS}).json()
    assert body["outputs"] == ["setosa", "versicolor", "virginica"]
    for row in body["predictions"]:
        probs = row["probabilities"]
        assert math.isclose(sum(probs), 1.0, rel_tol=1e-5)
        assert row["label"] == body["outputs"][int(np.argmax(probs))]


def test_uncertainty_regression_fields(client: TestClient) -> None:
    request = {"instances": ROWS, "samples": 400, "seed": 11, "interval": 0.9}
    body = client.post("/v1/models/toyreg/uncertainty", json=request).json()
    assert (body["samples"], body["seed"], body["interval"], body["device"]) == (
        400,
        11,
        0.9,
        "cpu",
    )
    assert body["outputs"] == ["y0", "y1"]
    assert len(body["predictions"]) == 3
    for row in body["predictions"]:
        assert "samples" not in row
        for out in range(2):
            assert row["aleatoric_variance"][out] == pytest.approx(1 / 4.0)
            assert row["epistemic_variance"][out] > 0
            assert row["variance"][out] == pytest.approx(
                row["epistemic_variance"][out] + row["aleatoric_variance"][out]
            )
            assert row["std"][out] == pytest.approx(math.sqrt(row["variance"][out]))
            assert row["lower"][out] < row["mean"][out] < row["upper"][out]


def test_uncertainty_seed_reproduces_and_differs(client: TestClient) -> None:
    def ask(seed: int) -> list[object]:
        request = {"instances": ROWS, "samples": 64, "seed": seed}
        predictions: list[object] = client.post(
            "/v1/models/toyreg/uncertainty", json=request
        ).json()["predictions"]
        return predictions

    assert ask(5) == ask(5)
    assert ask(5) != ask(6)


def test_uncertainty_without_seed_echoes_the_seed_used(client: TestClient) -> None:
    first = client.post("/v1/models/toyreg/uncertainty", json={"instances": ROWS}).json()
    assert first["samples"] == 100  # the settings default
    replay = {"instances": ROWS, "seed": first["seed"]}
    again = client.post("/v1/models/toyreg/uncertainty", json=replay).json()
    assert again["predictions"] == first["predictions"]


def test_return_samples_gives_t_rows_per_instance(client: TestClient) -> None:
    request = {"instances": ROWS[:2], "samples": 30, "seed": 1, "return_samples": True}
    body = client.post("/v1/models/toyreg/uncertainty", json=request).json()
    for row in body["predictions"]:
        samples = np.asarray(row["samples"])
        assert samples.shape == (30, 2)
        np.testing.assert_allclose(samples.mean(axis=0), row["mean"], rtol=1e-9)


def test_uncertainty_classification_fields(client: TestClient) -> None:
    request = {"instances": ROWS, "samples": 200, "seed": 3}
    body = client.post("/v1/models/toycls/uncertainty", json=request).json()
    assert body["task"] == "classification"
    assert "interval" not in body
    for row in body["predictions"]:
        probs = np.asarray(row["probabilities"])
        assert probs.sum() == pytest.approx(1.0)
        assert row["label"] == body["outputs"][int(probs.argmax())]
        assert 0.0 <= row["mutual_information"] <= row["predictive_entropy"] <= math.log(3)
        assert row["predictive_entropy"] == pytest.approx(
            row["expected_entropy"] + row["mutual_information"]
        )
        assert all(v >= 0 for v in row["variance"])


def test_mc_mean_is_near_the_deterministic_prediction(client: TestClient) -> None:
    # One hidden layer, no input dropout: the MC mean is unbiased for the weight-scaled output.
    det = client.post("/v1/models/toyreg/versions/1/predict", json={"instances": ROWS}).json()
    request = {"instances": ROWS, "samples": 4000, "seed": 2}
    mc = client.post("/v1/models/toyreg/versions/1/uncertainty", json=request).json()
    for det_row, mc_row in zip(det["predictions"], mc["predictions"], strict=True):
        stderr = math.sqrt(mc_row["epistemic_variance"][0] / 4000)
        assert abs(mc_row["mean"][0] - det_row[0]) < 5 * stderr + 1e-6


# auto: the toy model is narrow, where bf16 is slower than fp32 on any CPU.
@pytest.mark.parametrize(("setting", "ran"), [("bf16", "bf16"), ("tf32", "fp32"), ("auto", "fp32")])
def test_answers_name_the_precision_they_ran_at(
    toy_models_dir: Path, setting: str, ran: str
) -> None:
    for client in make_client(toy_models_dir, precision=setting):
        body = {"instances": ROWS, "samples": 50, "seed": 1}
        answer = client.post("/v1/models/toyreg/uncertainty", json=body)
        assert answer.status_code == 200
        assert answer.json()["precision"] == ran


def test_auto_runs_a_wide_network_in_bf16_where_the_cpu_has_it(tmp_path: Path) -> None:
    # A 256 x 256 layer, where bf16 beats fp32 on CPUs with native bf16. At T=50,
    # 0.05 std <= half of 1/sqrt(50), so bf16 is accurate enough.
    make_bundle(tmp_path, name="wide", hidden=(256, 256), dropout=(0.1, 0.1), n_features=3)
    expected = "bf16" if cpu_has_native_bf16() else "fp32"
    for client in make_client(tmp_path, precision="auto", device="cpu"):
        body = {"instances": ROWS, "samples": 50, "seed": 1}
        answer = client.post("/v1/models/wide/uncertainty", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["precision"] == expected
