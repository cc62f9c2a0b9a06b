"""A manifest can make the loader read only its own bundle's regular files, and only so much."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.bundle import MANIFEST_FILE, ONNX_FILE, WEIGHTS_FILE, Bundle, load_bundle
from service.errors import BundleError
from tests.factories import edit_manifest, make_bundle

SECRET = b"root:x:0:0:root:/root:/bin/bash\n"


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def bundle(models: Path) -> Path:
    return make_bundle(models)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file beside the models folder, as /etc/passwd is beside a real one."""
    secret = tmp_path / "elsewhere" / "passwd"
    secret.parent.mkdir()
    secret.write_bytes(SECRET)
    return secret


def load_within(path: Path, seconds: float = 10.0, **policy: Any) -> Bundle | BaseException:
    """Load on a thread so that a load that blocks fails the test instead of hanging it."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            if policy:
                from service.bundle import ReadPolicy

                outcome.append(load_bundle(path, ReadPolicy(**policy)))
            else:
                outcome.append(load_bundle(path))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"loading {path} blocked for {seconds} s"
    return outcome[0]  # type: ignore[no-any-return]


def refused(path: Path, *details: str, seconds: float = 10.0, **policy: Any) -> str:
    """The message of the BundleError that loading `path` raises, checked for each detail."""
    outcome = load_within(path, seconds, **policy)
    assert isinstance(outcome, BundleError), f"loaded: {outcome!r}"
    for detail in details:
        assert detail in outcome.message, outcome.message
    return outcome.message


@pytest.mark.parametrize("entry", ["absolute", "dotdot"])
@pytest.mark.parametrize("right_sha", [True, False])
def test_a_files_entry_outside_the_bundle_is_refused_unread(
    bundle: Path, outside: Path, entry: str, right_sha: bool
) -> None:
    name = str(outside) if entry == "absolute" else os.path.relpath(outside, bundle)
    sha = hashlib.sha256(SECRET if right_sha else b"guess").hexdigest()
    edit_manifest(bundle, lambda data: data["files"].update({name: sha}), resign=True)
    message = refused(bundle, "invalid manifest", repr(name), "model.onnx and weights.safetensors")
    secret_sha = hashlib.sha256(SECRET).hexdigest()
    assert not re.search(secret_sha[:6], message)  # the outside file's hash never shows


def test_a_mismatch_never_prints_the_files_own_hash(bundle: Path) -> None:
    actual = hashlib.sha256((bundle / ONNX_FILE).read_bytes()).hexdigest()
    edit_manifest(bundle, lambda data: data["files"].update({ONNX_FILE: "0" * 64}), resign=True)
    message = refused(bundle, "sha256 mismatch")
    assert actual[:6] not in message


@pytest.fixture
def unblock_fifos(tmp_path: Path) -> Iterator[list[Path]]:
    """Open every FIFO made by a test for writing afterwards, so a blocked reader wakes up."""
    fifos: list[Path] = []
    yield fifos
    for fifo in fifos:
        with contextlib.suppress(OSError):  # no reader was waiting
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("filename", [MANIFEST_FILE, ONNX_FILE, WEIGHTS_FILE])
def test_a_fifo_in_a_bundle_is_refused_without_blocking(
    bundle: Path, filename: str, unblock_fifos: list[Path]
) -> None:
    (bundle / filename).unlink()
    os.mkfifo(bundle / filename)
    unblock_fifos.append(bundle / filename)
    refused(bundle, str(bundle / filename), "is a FIFO", "regular files only", seconds=5.0)


def test_a_folder_in_place_of_a_file_is_refused(bundle: Path) -> None:
    (bundle / ONNX_FILE).unlink()
    (bundle / ONNX_FILE).mkdir()
    refused(bundle, str(bundle / ONNX_FILE))


def test_a_symlinked_file_leaving_the_models_folder_is_refused(
    bundle: Path, tmp_path: Path
) -> None:
    kept = tmp_path / "elsewhere" / ONNX_FILE
    kept.parent.mkdir()
    shutil.move(bundle / ONNX_FILE, kept)
    (bundle / ONNX_FILE).symlink_to(kept)
    refused(bundle, str(bundle / ONNX_FILE), "outside the models folder", "FOLLOW_OUTSIDE")
    assert isinstance(load_within(bundle, follow_outside_symlinks=True), Bundle)


def test_a_symlinked_version_folder_leaving_the_models_folder_is_refused(
    models: Path, bundle: Path, tmp_path: Path
) -> None:
    kept = tmp_path / "elsewhere" / "toy-1"
    kept.parent.mkdir()
    shutil.move(bundle, kept)
    bundle.symlink_to(kept, target_is_directory=True)
    refused(bundle, str(bundle), "bundle folder", "outside the models folder")
    loaded = load_within(bundle, models_dir=models, follow_outside_symlinks=True)
    assert isinstance(loaded, Bundle)


def test_a_symlinked_model_folder_leaving_the_models_folder_is_refused(
    models: Path, bundle: Path, tmp_path: Path
) -> None:
    kept = tmp_path / "elsewhere" / "toy"
    kept.parent.mkdir()
    shutil.move(models / "toy", kept)
    (models / "toy").symlink_to(kept, target_is_directory=True)
    refused(bundle, "outside the models folder")


def test_symlinks_that_stay_inside_the_models_folder_are_followed(
    models: Path, bundle: Path
) -> None:
    # Kubernetes mounts ConfigMaps and volumes through `..data` links inside the mount.
    shared = models / "..data"
    shared.mkdir()
    shutil.move(bundle / WEIGHTS_FILE, shared / WEIGHTS_FILE)
    (bundle / WEIGHTS_FILE).symlink_to(Path("..") / ".." / "..data" / WEIGHTS_FILE)
    assert isinstance(load_within(bundle, models_dir=models), Bundle)


def test_a_file_over_the_size_bound_is_refused_before_it_is_read(bundle: Path) -> None:
    size = (bundle / ONNX_FILE).stat().st_size
    refused(
        bundle,
        str(bundle / ONNX_FILE),
        f"{size} bytes",
        "MAX_BUNDLE_FILE_BYTES",
        max_file_bytes=size - 1,
    )
    assert isinstance(load_within(bundle, max_file_bytes=size + 10_000), Bundle)


def test_a_huge_manifest_is_refused(bundle: Path) -> None:
    path = bundle / MANIFEST_FILE
    path.write_bytes(path.read_bytes()[:-2] + b" " * (1 << 20) + b"}\n")
    refused(bundle, str(path), "over the limit")
