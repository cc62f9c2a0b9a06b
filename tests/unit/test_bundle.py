"""Bundles: atomic versioned saves, verified loads, refusal of tampered bundles, discovery."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from service.bundle import (
    MANIFEST_FILE,
    ONNX_FILE,
    WEIGHTS_FILE,
    discover,
    load_bundle,
    next_version,
)
from service.bundle.store import sha256_file
from service.errors import BundleError
from service.model.mlp import Task
from tests.factories import edit_manifest, make_bundle, make_config, make_network


def flip_byte(file: Path, offset: int) -> None:
    data = bytearray(file.read_bytes())
    data[offset] ^= 0x01
    file.write_bytes(bytes(data))


def refused(path: Path, naming: Path, *details: str) -> None:
    """load_bundle raises a BundleError whose message names `naming` and says each detail."""
    with pytest.raises(BundleError, match=re.escape(str(naming))) as info:
        load_bundle(path)
    for detail in details:
        assert detail in info.value.message


@pytest.fixture
def bundle_path(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "models")


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_saved_bundle_loads_with_its_manifest_and_weights(tmp_path: Path, task: Task) -> None:
    path = make_bundle(tmp_path, name="iris", task=task, hidden=(8, 4), dropout=(0.1, 0.2))
    assert path == tmp_path / "iris" / "1"
    assert sorted(p.name for p in path.iterdir()) == sorted(
        [MANIFEST_FILE, ONNX_FILE, WEIGHTS_FILE]
    )
    bundle = load_bundle(path)
    manifest = bundle.manifest
    assert (manifest.name, manifest.version, manifest.task) == ("iris", 1, task)
    assert manifest.files == {f: sha256_file(path / f) for f in (ONNX_FILE, WEIGHTS_FILE)}
    assert bundle.onnx_path == path / ONNX_FILE
    assert not bundle.network.training
    expected = make_network(manifest.mlp_config(), seed=0)
    for name, tensor in expected.state_dict().items():
        assert torch.equal(bundle.network.state_dict()[name], tensor), name


def test_versions_count_up_on_repeated_saves(tmp_path: Path) -> None:
    assert next_version(tmp_path, "toy") == 1
    paths = [make_bundle(tmp_path, seed=seed) for seed in range(3)]
    assert [p.name for p in paths] == ["1", "2", "3"]
    assert [load_bundle(p).manifest.version for p in paths] == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "toy").iterdir()) == ["1", "2", "3"]  # no staging
    assert next_version(tmp_path, "toy") == 4
    assert next_version(tmp_path, "other") == 1


def test_changed_byte_in_the_onnx_file_is_refused(bundle_path: Path) -> None:
    flip_byte(bundle_path / ONNX_FILE, offset=100)
    refused(bundle_path, bundle_path / ONNX_FILE, "sha256 mismatch")


def test_changed_byte_in_the_weights_is_refused(bundle_path: Path) -> None:
    weights = bundle_path / WEIGHTS_FILE
    flip_byte(weights, offset=weights.stat().st_size - 3)  # inside the tensor data
    refused(bundle_path, weights, "sha256 mismatch")


@pytest.mark.parametrize("filename", [ONNX_FILE, WEIGHTS_FILE])
def test_missing_file_is_refused(bundle_path: Path, filename: str) -> None:
    (bundle_path / filename).unlink()
    refused(bundle_path, bundle_path / filename, "missing")


def test_missing_manifest_is_refused(bundle_path: Path) -> None:
    (bundle_path / MANIFEST_FILE).unlink()
    refused(bundle_path, bundle_path / MANIFEST_FILE, "cannot read the manifest")


def test_manifest_that_is_not_json_is_refused(bundle_path: Path) -> None:
    (bundle_path / MANIFEST_FILE).write_text('{"name": "toy", "version": 1,')
    refused(bundle_path, bundle_path / MANIFEST_FILE, "invalid manifest", "JSON")


def _set_negative_dropout(data: dict[str, Any]) -> None:
    data["architecture"]["dropout"] = [-0.1]


def _drop_training(data: dict[str, Any]) -> None:
    del data["training"]


def _add_import_record(data: dict[str, Any]) -> None:
    # A bundle is trained here or imported, never both.
    data["imported"] = {
        "format": "onnx",
        "source_file": "net.onnx",
        "source_sha256": "0" * 64,
        "importer_version": 1,
        "parity_max_error": 0.0,
        "parity_rows": 1,
    }


def _add_extra_field(data: dict[str, Any]) -> None:
    data["colour"] = "red"


def _drop_tau(data: dict[str, Any]) -> None:
    data["tau"] = None


def _example_of_the_wrong_width(data: dict[str, Any]) -> None:
    data["examples"] = [[1.0] * (len(data["features"]) + 1)]


def _too_many_examples(data: dict[str, Any]) -> None:
    data["examples"] = [[1.0] * len(data["features"])] * 17


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (_set_negative_dropout, "architecture.dropout.0"),
        (_drop_training, "exactly one of training (a bundle trained here) and imported"),
        (_add_import_record, "exactly one of training (a bundle trained here) and imported"),
        (_add_extra_field, "colour: Extra inputs are not permitted"),
        (_drop_tau, "needs tau"),
        (_example_of_the_wrong_width, "every example row must have 3 values"),
        (_too_many_examples, "examples: List should have at most 16 items"),
    ],
)
def test_manifest_violating_the_schema_is_refused(
    bundle_path: Path, change: Callable[[dict[str, Any]], None], detail: str
) -> None:
    edit_manifest(bundle_path, change)
    refused(bundle_path, bundle_path / MANIFEST_FILE, "invalid manifest", detail)


def test_examples_are_optional_and_load_when_present(bundle_path: Path) -> None:
    assert load_bundle(bundle_path).manifest.examples is None  # as in bundles written before
    edit_manifest(bundle_path, lambda data: data.update(examples=[[1.0, -2.5, 3.0]]), resign=True)
    assert load_bundle(bundle_path).manifest.examples == [[1.0, -2.5, 3.0]]


def test_manifest_whose_version_differs_from_its_folder_is_refused(bundle_path: Path) -> None:
    edit_manifest(bundle_path, lambda data: data.update(version=2), resign=True)
    refused(bundle_path, bundle_path / MANIFEST_FILE, "toy/2", "toy/1")


def test_manifest_whose_name_differs_from_its_folder_is_refused(bundle_path: Path) -> None:
    moved = bundle_path.parent.parent / "other" / "1"
    shutil.copytree(bundle_path, moved)
    refused(moved, moved / MANIFEST_FILE, "manifest says toy/1", "other/1")


def test_weights_whose_shapes_do_not_fit_are_refused(bundle_path: Path) -> None:
    weights = bundle_path / WEIGHTS_FILE
    wider = make_network(make_config(hidden=(32,), dropout=(0.1,)))
    save_file(dict(wider.state_dict()), str(weights))
    edit_manifest(
        bundle_path,
        lambda data: data["files"].update({WEIGHTS_FILE: sha256_file(weights)}),
        resign=True,
    )
    refused(bundle_path, weights, "do not fit the manifest", "size mismatch")


def test_weights_that_are_not_safetensors_are_refused(bundle_path: Path) -> None:
    weights = bundle_path / WEIGHTS_FILE
    weights.write_bytes(b"\x80\x04 a pickle, perhaps")
    edit_manifest(
        bundle_path,
        lambda data: data["files"].update({WEIGHTS_FILE: sha256_file(weights)}),
        resign=True,
    )
    refused(bundle_path, weights, "do not fit the manifest")


def test_discover_ignores_staging_folders_and_junk(tmp_path: Path) -> None:
    good = make_bundle(tmp_path, name="toy")
    toy = tmp_path / "toy"
    (toy / ".staging-2-abc123").mkdir()  # a save in progress (or one that crashed)
    (toy / "0").mkdir()  # versions start at 1
    (toy / "latest").mkdir()
    (toy / "7").write_text("a file, not a folder")
    (toy / "²").mkdir()  # str.isdigit() says yes, int() says no
    (toy / "007").mkdir()  # not how a version is written; would alias version 7
    (tmp_path / ".staging").mkdir()
    (tmp_path / "Bad Name").mkdir()
    (tmp_path / "Bad Name" / "1").mkdir()
    (tmp_path / "README.md").write_text("not a model")
    (tmp_path / "empty").mkdir()
    assert discover(tmp_path) == {"toy": {1: good}}
    assert next_version(tmp_path, "toy") == 2
    assert discover(tmp_path / "does-not-exist") == {}


def test_saved_bundle_files_are_readable_by_other_users(tmp_path: Path) -> None:
    # The container runs as an unprivileged user that does not own freshly trained bundles.
    bundle = make_bundle(tmp_path)
    for path in bundle.iterdir():
        assert path.stat().st_mode & 0o044 == 0o044, path.name
