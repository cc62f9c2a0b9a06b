"""Imported networks served by a real `dropserve serve`: a PyTorch export in train mode
(TorchScript exporter), one in eval mode (dynamo exporter) and a tf2onnx-style classifier each
answer /predict as ONNX Runtime runs the original file, and /uncertainty and /v2 like a trained
bundle."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from tests.e2e.conftest import dropserve_command, poll_until_ready, start_server, stop_server
from tests.onnx_graphs import dense_graph, save, torch_export, torch_mlp

ROWS = [[0.5, -1.0, 2.0], [3.0, 1.5, -0.5], [-2.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
ADMIN_TOKEN = "import-test-token"
COMMON = ["--features", "a,b,c", "--quiet", "--tau-samples", "50"]


def original_output(path: Path, rows: list[list[float]]) -> np.ndarray:
    """ONNX Runtime on the original file, its Dropout nodes in inference mode.

    A train-mode export sets Dropout's training_mode input, so ONNX Runtime would drop units;
    without it the graph computes what the network predicts.
    """
    model = onnx.load(str(path))
    for node in model.graph.node:
        if node.op_type == "Dropout":
            del node.input[2:]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.asarray(rows, dtype=np.float32)}
    return np.asarray(session.run(None, feed)[0], dtype=np.float64)


def dropserve_import(models: Path, *args: str) -> None:
    command = [*dropserve_command(), "import", *args, "--models-dir", str(models), *COMMON]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("originals")
    train = torch_export(torch_mlp(seed=1), folder / "train.onnx", train=True, dynamo=False)
    evaluated = torch_mlp(activation=nn.GELU, seed=2)
    dynamo = torch_export(evaluated, folder / "eval.onnx", train=False, dynamo=True)
    keras = dense_graph((3, 8, 3), rates=(0.0, 0.2), head="Softmax", seed=3)
    return {"trainmode": train, "evalmode": dynamo, "keras": save(keras, folder / "keras.onnx")}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def client(
    originals: dict[str, Path], models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    dropserve_import(
        models, "onnx", str(originals["trainmode"]), "--name", "trainmode", "--tau", "25"
    )
    dropserve_import(
        models,
        "onnx",
        str(originals["evalmode"]),
        "--name",
        "evalmode",
        "--tau",
        "25",
        "--dropout",
        "0.1",
        "--input-dropout",
        "0.05",
    )
    dropserve_import(
        models, "onnx", str(originals["keras"]), "--name", "keras", "--classes", "cat,dog,owl"
    )
    log = tmp_path_factory.mktemp("server") / "dropserve.log"
    env = {"DROPSERVE_DEVICE": "cpu", "DROPSERVE_ADMIN_TOKEN": ADMIN_TOKEN}
    server = start_server(log, env, models_dir=models)
    try:
        poll_until_ready(server)
        with httpx.Client(base_url=server.base_url, timeout=30.0) as http:
            yield http
    finally:
        stop_server(server)


@pytest.mark.parametrize("name", ["trainmode", "evalmode"])
def test_regression_predict_equals_onnx_runtime_on_the_original(
    client: httpx.Client, originals: dict[str, Path], name: str
) -> None:
    body = client.post(f"/v1/models/{name}/predict", json={"instances": ROWS}).json()
    expected = original_output(originals[name], ROWS)
    np.testing.assert_allclose(np.asarray(body["predictions"]), expected, rtol=1e-5, atol=1e-6)


def test_classifier_predict_equals_onnx_runtime_on_the_original(
    client: httpx.Client, originals: dict[str, Path]
) -> None:
    body = client.post("/v1/models/keras/predict", json={"instances": ROWS}).json()
    expected = original_output(originals["keras"], ROWS)
    got = np.asarray([row["probabilities"] for row in body["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert body["outputs"] == ["cat", "dog", "owl"]


@pytest.mark.parametrize("name", ["trainmode", "evalmode"])
def test_regression_uncertainty_is_served(client: httpx.Client, name: str) -> None:
    request = {"instances": ROWS, "samples": 300, "seed": 5}
    body = client.post(f"/v1/models/{name}/uncertainty", json=request).json()
    for row in body["predictions"]:
        assert row["epistemic_variance"][0] > 0  # the imported dropout rates are at work
        assert row["aleatoric_variance"][0] == pytest.approx(1 / 25)
        assert row["lower"][0] < row["mean"][0] < row["upper"][0]


def test_classifier_uncertainty_is_served(client: httpx.Client) -> None:
    request = {"instances": ROWS, "samples": 300, "seed": 5}
    body = client.post("/v1/models/keras/uncertainty", json=request).json()
    for row in body["predictions"]:
        assert math.isclose(sum(row["probabilities"]), 1.0, rel_tol=1e-6)
        assert 0 < row["mutual_information"] <= row["predictive_entropy"] <= math.log(3)


@pytest.mark.parametrize("name", ["trainmode", "keras"])
def test_open_inference_protocol_answers(client: httpx.Client, name: str) -> None:
    tensor = {"name": "features", "shape": [len(ROWS), 3], "datatype": "FP32", "data": ROWS}
    metadata = client.get(f"/v2/models/{name}").json()
    assert metadata["inputs"][0]["shape"] == [-1, 3]
    body = client.post(f"/v2/models/{name}/infer", json={"inputs": [tensor]}).json()
    v1 = client.post(f"/v1/models/{name}/predict", json={"instances": ROWS}).json()
    first = np.asarray(body["outputs"][0]["data"], dtype=np.float32)
    if name == "keras":
        expected = [row["probabilities"] for row in v1["predictions"]]
    else:
        expected = v1["predictions"]
    np.testing.assert_array_equal(first, np.asarray(expected, dtype=np.float32).reshape(-1))
    params = {"mode": "uncertainty", "samples": 100, "seed": 1}
    mc = client.post(f"/v2/models/{name}/infer", json={"inputs": [tensor], "parameters": params})
    assert mc.status_code == 200, mc.text


def test_state_dict_imported_into_a_running_server_is_served_after_reload(
    client: httpx.Client, models: Path, tmp_path: Path
) -> None:
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.1), nn.Linear(8, 1)).eval()
    save_file(net.state_dict(), str(tmp_path / "net.safetensors"))
    dropserve_import(
        models,
        "torch",
        str(tmp_path / "net.safetensors"),
        "--name",
        "fromtorch",
        "--activation",
        "tanh",
        "--dropout",
        "0.1",
        "--tau",
        "9",
    )
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.post("/admin/reload", headers=headers).status_code == 200
    body = client.post("/v1/models/fromtorch/predict", json={"instances": ROWS}).json()
    expected = net(torch.as_tensor(ROWS)).detach().double().numpy()
    np.testing.assert_allclose(np.asarray(body["predictions"]), expected, rtol=1e-5, atol=1e-6)
