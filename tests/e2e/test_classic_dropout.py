"""A regression bundle trained with classic dropout, served end to end.

With classic dropout the passes keep units unscaled and the deterministic graph multiplies by the
keep probability. For a network whose only dropout sits after its one hidden layer, the output is
linear in the mask, so the MC mean converges to the deterministic prediction exactly (not just
approximately, as with deeper networks): over the wire, the two must agree within the MC
standard error, while the unscaled forward, what a server mixing up the two styles would answer,
lies far outside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from service.bundle import load_bundle
from service.model import DropoutMLP
from tests.e2e.conftest import Server, poll_until_ready, start_server, stop_server
from tests.factories import make_bundle, raw_features

RATE = 0.5
SAMPLES = 10_000


@pytest.fixture(scope="module")
def classic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    models_dir = tmp_path_factory.mktemp("models")
    bundle = make_bundle(
        models_dir, name="classic", style="classic", hidden=(32,), dropout=(RATE,), seed=5
    )
    log_path = tmp_path_factory.mktemp("server") / "dropserve.log"
    server = start_server(log_path, {"DROPSERVE_DEVICE": "cpu"}, models_dir=models_dir)
    try:
        poll_until_ready(server)
        yield server, bundle
    finally:
        stop_server(server)


def _unscaled(bundle: Path, rows: np.ndarray) -> np.ndarray:
    """The eval forward without the keep-probability scaling, in original units."""
    loaded = load_bundle(bundle)
    config = dataclasses.replace(loaded.network.config, style="inverted")
    network = DropoutMLP(config)
    network.load_state_dict(loaded.network.state_dict())
    network.eval()
    norm = loaded.manifest.standardizer()
    x = (rows - np.asarray(norm.feature_mean)) / np.asarray(norm.feature_std)
    with torch.no_grad():
        out = network(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    return out * np.asarray(norm.target_std) + np.asarray(norm.target_mean)


def test_mc_mean_of_classic_dropout_matches_the_scaled_graph(
    classic: tuple[Server, Path],
) -> None:
    server, bundle = classic
    norm = load_bundle(bundle).manifest.standardizer()
    rows = raw_features(norm, rows=4, seed=1)
    body = {"instances": rows.tolist()}
    with httpx.Client(base_url=server.base_url, timeout=60.0) as client:
        predicted = client.post("/v1/models/classic/predict", json=body)
        uncertain = client.post(
            "/v1/models/classic/uncertainty", json={**body, "samples": SAMPLES, "seed": 3}
        )
    assert predicted.status_code == 200, predicted.text
    assert uncertain.status_code == 200, uncertain.text
    deterministic = np.asarray(predicted.json()["predictions"])
    answers = uncertain.json()["predictions"]
    mean = np.asarray([answer["mean"] for answer in answers])
    standard_error = np.sqrt([answer["epistemic_variance"] for answer in answers]) / SAMPLES**0.5
    # Float32 arithmetic on both sides adds ~1e-5 relative at most.
    allowed = 5 * standard_error + 1e-4 * np.abs(deterministic)
    assert np.all(np.abs(mean - deterministic) < allowed), (mean, deterministic, allowed)
    # The test can tell the styles apart: the unscaled forward is far outside that band.
    assert np.all(np.abs(_unscaled(bundle, rows) - deterministic) > 10 * allowed)
