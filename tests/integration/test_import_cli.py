"""`dropserve import onnx | torch` end to end: real exports, bundles that load, verify and
evaluate like trained ones, and refusals that exit with status 2 and write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from service.bundle import ONNX_FILE, discover, load_bundle
from service.cli import main
from service.importers import IMPORTER_VERSION
from service.importers.network import Reference
from tests.onnx_graphs import dense_graph, save, torch_export, torch_mlp
from tests.training_csv import classification_csv, regression_csv

FEATURES = ["--features", "a,b,c"]
QUIET = ["--quiet", "--tau-samples", "50"]


def run(kind: str, path: Path, models: Path, *extra: str) -> int:
    return main(
        ["import", kind, str(path), "--name", "net", "--models-dir", str(models), *QUIET, *extra]
    )


def onnx_output(source: Path | bytes, rows: np.ndarray) -> np.ndarray:
    data = source.read_bytes() if isinstance(source, Path) else source
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: rows.astype(np.float32)}
    return np.asarray(session.run(None, feed)[0], dtype=np.float64)


def rows(n: int = 64, width: int = 3) -> np.ndarray:
    return np.random.default_rng(7).normal(scale=2.0, size=(n, width))


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("train", [True, False], ids=["train-mode", "eval-mode"])
def test_torch_export_imports_with_parity(tmp_path: Path, dynamo: bool, train: bool) -> None:
    # Eval mode with TorchScript at opset 17 writes GELU as Erf; dynamo writes the Gelu op.
    module = torch_mlp(activation=nn.GELU if not train else nn.ReLU)
    original = torch_export(module, tmp_path / "m.onnx", train=train, dynamo=dynamo)
    flags = [] if train else ["--dropout", "0.1,0.1", "--input-dropout", "0.05"]
    assert run("onnx", original, tmp_path / "models", *FEATURES, "--tau", "4", *flags) == 0

    bundle = load_bundle(tmp_path / "models" / "net" / "1")
    manifest = bundle.manifest
    assert manifest.training is None
    assert manifest.imported is not None
    assert manifest.imported.format == "onnx"
    assert manifest.imported.source_file == "m.onnx"
    assert manifest.imported.importer_version == IMPORTER_VERSION
    assert manifest.architecture.dropout == [0.1, 0.1]
    assert manifest.architecture.input_dropout == 0.05
    assert manifest.architecture.activation == ("relu" if train else "gelu")
    x = rows()
    expected = module.eval()(torch.as_tensor(x, dtype=torch.float32)).detach().numpy()
    if not train:  # ONNX Runtime applies a train-mode graph's Dropout nodes (training_mode=1)
        np.testing.assert_allclose(onnx_output(original, x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(onnx_output(bundle.onnx_bytes, x), expected, rtol=1e-5, atol=1e-6)


def test_tf2onnx_classifier_with_prefix_folds_the_standardisation(tmp_path: Path) -> None:
    data = classification_csv(tmp_path / "labels.csv")
    mean, std = np.array([0.5, -0.2]), np.array([2.0, 0.5])
    model = dense_graph(
        (2, 6, 3), rates=(0.1, 0.2), prefix=(mean, std), head="LogSoftmax", constants_as_nodes=True
    )
    original = save(model, tmp_path / "keras.onnx")
    code = run(
        "onnx",
        original,
        tmp_path / "models",
        "--features-from",
        str(data),
        "--target",
        "label",
        "--classes",
        "high,low,mid",
        "--calibrate",
        str(data),
    )
    assert code == 0
    manifest = load_bundle(tmp_path / "models" / "net" / "1").manifest
    assert manifest.task == "classification"
    assert manifest.classes == ["high", "low", "mid"]
    assert manifest.features == ["u", "v"]
    np.testing.assert_allclose(manifest.normalization.feature_mean, mean, rtol=1e-6)
    np.testing.assert_allclose(manifest.normalization.feature_std, std, rtol=1e-6)
    assert (manifest.architecture.input_dropout, manifest.architecture.dropout) == (0.1, [0.2])
    assert {
        "calibration_accuracy",
        "calibration_ece",
        "calibration_mc_ece",
    } <= manifest.metrics.keys()
    assert manifest.imported is not None
    assert manifest.imported.calibration_rows == 240


def write_state(tmp_path: Path, suffix: str) -> tuple[Path, nn.Sequential]:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 1)).eval()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(net.state_dict(), str(path))
    else:
        torch.save(net.state_dict(), path)
    return path, net


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_state_dict_calibrates_tau_and_evaluates_like_a_trained_bundle(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = regression_csv(tmp_path / "data.csv", rows=120)
    path, net = write_state(tmp_path, suffix)
    code = run(
        "torch",
        path,
        tmp_path / "models",
        "--activation",
        "relu",
        "--dropout",
        "0.1",
        "--calibrate",
        str(data),
        "--target",
        "y",
    )
    assert code == 0
    folder = tmp_path / "models" / "net" / "1"
    bundle = load_bundle(folder)
    manifest = bundle.manifest
    assert manifest.features == ["a", "b", "c"]
    assert manifest.targets == ["y"]
    assert manifest.tau is not None
    assert manifest.tau[0] > 0
    assert {
        "calibration_rmse",
        "calibration_nll",
        "calibration_coverage_90",
    } <= manifest.metrics.keys()
    assert manifest.imported is not None
    assert manifest.imported.calibration_file == "data.csv"
    assert manifest.examples is not None
    assert len(manifest.examples) == 8
    x = rows()
    expected = net(torch.as_tensor(x, dtype=torch.float32)).detach().double().numpy()
    np.testing.assert_allclose(onnx_output(bundle.onnx_bytes, x), expected, rtol=1e-5, atol=1e-6)

    capsys.readouterr()
    evaluate = ["evaluate", "--bundle", str(folder), "--data", str(data), "--samples", "50"]
    assert main([*evaluate, "--format", "json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metrics"]["rmse"] == pytest.approx(
        manifest.metrics["calibration_rmse"], rel=1e-4
    )
    # Imported bundles have no training split to re-create.
    assert main([*evaluate, "--rows", "validation", "--quiet"]) == 1
    assert "was imported, not trained by dropserve" in capsys.readouterr().err
    # `dropserve export` re-exports it as version 2, like a trained bundle.
    assert main(["export", "--bundle", str(folder)]) == 0
    assert load_bundle(tmp_path / "models" / "net" / "2").manifest.imported == manifest.imported


def test_classic_style_scales_by_the_keep_probability(tmp_path: Path) -> None:
    path, net = write_state(tmp_path, ".safetensors")
    code = run(
        "torch",
        path,
        tmp_path / "models",
        "--activation",
        "relu",
        "--dropout",
        "0.5",
        "--dropout-style",
        "classic",
        *FEATURES,
        "--tau",
        "1",
    )
    assert code == 0
    bundle = load_bundle(tmp_path / "models" / "net" / "1")
    x = rows()
    with torch.no_grad():
        hidden = net[1](net[0](torch.as_tensor(x, dtype=torch.float32)))
        expected = net[3](hidden * 0.5).double().numpy()  # weight-scaling rule: keep = 1 - 0.5
    np.testing.assert_allclose(onnx_output(bundle.onnx_bytes, x), expected, rtol=1e-5, atol=1e-6)


def _eval_graph(tmp_path: Path) -> Path:
    return save(dense_graph((3, 8, 8, 1)), tmp_path / "eval.onnx")


REFUSALS = {
    "no dropout rates": (
        [*FEATURES, "--tau", "1"],
        "pass --dropout with one rate per hidden layer (2",
    ),
    "wrong rate count": ([*FEATURES, "--tau", "1", "--dropout", "0.1,0.1,0.1"], "gives 3 rate(s)"),
    "no tau": ([*FEATURES, "--dropout", "0.1"], "pass --calibrate data.csv (with --target COL)"),
    "no features": (["--dropout", "0.1", "--tau", "1"], "pass --features a,b,... in input order"),
    "feature count": (
        ["--features", "a,b", "--dropout", "0.1", "--tau", "1"],
        "takes 3 features, but --features names 2",
    ),
    "bad name": (
        ["--name", "My Net", *FEATURES, "--tau", "1"],
        "model name 'My Net' is not allowed",
    ),
    "classification of one output": (
        [*FEATURES, "--dropout", "0.1", "--task", "classification"],
        "at least two outputs",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusal_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    flags, message = REFUSALS[case]
    models = tmp_path / "models"
    assert run("onnx", _eval_graph(tmp_path), models, *flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("dropserve import onnx: error: ")
    assert message in err
    assert discover(models) == {}


def test_pickle_refusal_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "model.pt"
    torch.save(nn.Linear(3, 1), path)  # a whole module: unpickling it would run its class code
    assert run("torch", path, tmp_path / "models", "--activation", "relu", "--dropout", "0.1") == 2
    assert "refuses it" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_parity_failure_names_the_row_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.importers import sources

    real = sources.onnx_reference

    def drifting(model: onnx.ModelProto, keeps: list[tuple[int, float]], label: str) -> Reference:
        exact = real(model, keeps, label)
        return lambda x: exact(x) + 1e-3 * (np.arange(len(x)) == 17)[:, None]

    monkeypatch.setattr(sources, "onnx_reference", drifting)
    flags = [*FEATURES, "--dropout", "0.1", "--tau", "1"]
    assert run("onnx", _eval_graph(tmp_path), tmp_path / "models", *flags) == 2
    err = capsys.readouterr().err
    assert "does not reproduce eval.onnx" in err
    assert "on random row 17" in err
    assert "nothing was written" in err
    assert discover(tmp_path / "models") == {}
    # What the staging folder of save_bundle would leave behind is not there either.
    assert not list((tmp_path / "models").rglob(ONNX_FILE))


def test_classic_style_onnx_reference_scales_the_original_too(tmp_path: Path) -> None:
    model = dense_graph((3, 8, 1))
    original = save(model, tmp_path / "eval.onnx")
    flags = [*FEATURES, "--tau", "1", "--dropout", "0.5", "--input-dropout", "0.2"]
    assert run("onnx", original, tmp_path / "models", *flags, "--dropout-style", "classic") == 0
    bundle = load_bundle(tmp_path / "models" / "net" / "1")
    w = {init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer}
    x = rows()
    hidden = np.maximum((0.8 * x) @ w["dense_0/kernel"] + w["dense_0/bias"], 0.0)
    expected = (0.5 * hidden) @ w["dense_1/kernel"] + w["dense_1/bias"]
    np.testing.assert_allclose(onnx_output(bundle.onnx_bytes, x), expected, rtol=1e-5, atol=1e-5)


def test_prints_where_the_version_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The host and port are the server's settings, so the URL is right for this configuration.
    monkeypatch.setenv("DROPSERVE_HOST", "0.0.0.0")
    monkeypatch.setenv("DROPSERVE_PORT", "8123")
    monkeypatch.setenv("DROPSERVE_WATCH_S", "0")
    models = tmp_path / "models"
    flags = [*FEATURES, "--dropout", "0.1,0.1", "--tau", "1"]
    assert run("onnx", _eval_graph(tmp_path), models, *flags) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(models / "net" / "1")
    assert lines[1] == (
        f"  serving at http://127.0.0.1:8123/v1/models/net/versions/1 by a server on {models}; "
        "watching is off (DROPSERVE_WATCH_S=0): POST /admin/reload on a running server"
    )
