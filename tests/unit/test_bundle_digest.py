"""The manifest is covered by its digest, and the two engines must agree before a bundle loads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.torch import load_file

from service.bundle import MANIFEST_FILE, ONNX_FILE, WEIGHTS_FILE, Manifest, load_bundle
from service.cli import main
from service.errors import BundleError
from service.export import torch_eval
from service.model import DropoutMLP
from tests.factories import edit_manifest, make_bundle

REPO = Path(__file__).resolve().parents[2]


def one_digit_off(data: dict[str, Any]) -> None:
    """Change one digit of feature_mean[0], as the attack did."""
    text = repr(data["normalization"]["feature_mean"][0])
    index = next(i for i, c in enumerate(text) if c.isdigit() and c != "0")
    digit = "1" if text[index] != "1" else "2"
    data["normalization"]["feature_mean"][0] = float(text[:index] + digit + text[index + 1 :])


def tau_times_1000(data: dict[str, Any]) -> None:
    data["tau"] = [value * 1000 for value in data["tau"]]


def refusal(bundle: Path) -> str:
    with pytest.raises(BundleError) as info:
        load_bundle(bundle)
    return info.value.message


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "models")


@pytest.mark.parametrize("change", [one_digit_off, tau_times_1000])
def test_an_edit_of_the_manifest_that_was_not_signed_is_refused(
    bundle: Path, change: Callable[[dict[str, Any]], None]
) -> None:
    edit_manifest(bundle, change)
    message = refusal(bundle)
    assert str(bundle / MANIFEST_FILE) in message
    assert "does not match its digest" in message
    assert f"dropserve sign {bundle}" in message


def test_a_manifest_without_a_digest_is_refused_until_signed(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_manifest(bundle, lambda data: data.pop("digest", None))
    message = refusal(bundle)
    assert "has no digest" in message
    assert f"`dropserve sign {bundle}`" in message
    assert main(["sign", str(bundle)]) == 0
    assert "signed toy/1 (sha256:" in capsys.readouterr().out
    assert load_bundle(bundle).manifest.digest is not None


def test_a_signed_change_of_the_normalization_is_refused_with_both_outputs(bundle: Path) -> None:
    edit_manifest(bundle, one_digit_off, resign=True)
    message = refusal(bundle)
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    row = np.asarray([manifest["normalization"]["feature_mean"]])
    session = ort.InferenceSession((bundle / ONNX_FILE).read_bytes())
    (onnx_out,) = session.run(["prediction"], {"features": row.astype(np.float32)})
    parsed = Manifest.model_validate(manifest)
    network = DropoutMLP(parsed.mlp_config())
    network.load_state_dict(load_file(bundle / WEIGHTS_FILE))
    mc_out = torch_eval(network.eval(), parsed.standardizer(), row)
    assert f"ONNX graph answers {float(onnx_out[0, 0]):.6g}" in message
    assert f"in eval mode {float(mc_out[0, 0]):.6g}" in message
    assert "the feature means" in message
    assert "tolerance 1e-05" in message


def test_parity_is_checked_on_the_example_rows_when_there_are_some(bundle: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["examples"] = [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]
        one_digit_off(data)

    edit_manifest(bundle, change, resign=True)
    assert "on example row" in refusal(bundle)


def test_signing_refuses_a_bundle_whose_engines_disagree(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_manifest(bundle, one_digit_off)
    before = (bundle / MANIFEST_FILE).read_bytes()
    assert main(["sign", str(bundle)]) == 1
    assert "the ONNX graph answers" in capsys.readouterr().err
    assert (bundle / MANIFEST_FILE).read_bytes() == before


def test_a_reviewed_change_of_tau_loads_once_signed(bundle: Path) -> None:
    # tau never reaches the ONNX graph, so only the digest guards it: signing is the review.
    edit_manifest(bundle, tau_times_1000)
    assert main(["sign", str(bundle)]) == 0
    assert load_bundle(bundle).manifest.tau == [4000.0]


@pytest.mark.parametrize("name", ["concrete", "digits"])
def test_the_shipped_bundles_are_signed(name: str) -> None:
    bundle = load_bundle(REPO / "models" / name / "1")
    assert bundle.manifest.digest is not None
