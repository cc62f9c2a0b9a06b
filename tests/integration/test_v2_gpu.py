"""On CUDA, the Monte-Carlo outputs (summaries, labels, draws) leave the GPU intact over /v2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from tests.integration.conftest import make_client

ROWS = [[0.5, -1.0, 2.0], [3.0, 1.5, -0.5], [-2.0, 0.0, 1.0]]
SUMMARIES = {
    "toyreg": ["mean", "variance", "std", "epistemic_variance", "aleatoric_variance", "lower"],
    "toycls": ["probabilities", "variance", "predictive_entropy", "mutual_information"],
}


@pytest.fixture(scope="module")
def cuda_client(toy_models_dir: Path) -> Iterator[TestClient]:
    if not torch.cuda.is_available():  # the tests also ask for `requires_cuda`, which skips
        pytest.skip("needs CUDA; torch.cuda is not available")
    yield from make_client(toy_models_dir, device="cuda", max_return_samples=100)


@pytest.mark.parametrize("model", ["toyreg", "toycls"])
def test_uncertainty_on_cuda_equals_the_json_api(
    requires_cuda: torch.device, cuda_client: TestClient, model: str
) -> None:
    names = [*SUMMARIES[model], "draws"] + (["label"] if model == "toycls" else [])
    request = {
        "inputs": [{"name": "features", "shape": [3, 3], "datatype": "FP64", "data": ROWS}],
        "parameters": {"mode": "uncertainty", "samples": 40, "seed": 8},
        "outputs": [{"name": name} for name in names],
    }
    response = cuda_client.post(f"/v2/models/{model}/infer", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["parameters"]["device"].startswith("cuda")
    got = {out["name"]: out["data"] for out in body["outputs"]}
    v1_request = {"instances": ROWS, "samples": 40, "seed": 8, "return_samples": True}
    v1 = cuda_client.post(f"/v1/models/{model}/uncertainty", json=v1_request).json()
    rows = v1["predictions"]
    for name in SUMMARIES[model]:
        expected = np.asarray([row[name] for row in rows]).astype(np.float32).ravel()
        np.testing.assert_array_equal(np.asarray(got[name], dtype=np.float32), expected, name)
    draws = np.asarray([row["samples"] for row in rows]).astype(np.float32).ravel()
    np.testing.assert_array_equal(np.asarray(got["draws"], dtype=np.float32), draws)
    if model == "toycls":
        assert got["label"] == [row["label"] for row in rows]
