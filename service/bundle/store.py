"""Write bundles atomically and load them back with their checksums and schema verified."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from service.bundle.manifest import MANIFEST_FILE, NAME_PATTERN, ONNX_FILE, WEIGHTS_FILE, Manifest
from service.errors import BundleError
from service.model import DropoutMLP

__all__ = [
    "Bundle",
    "discover",
    "load_bundle",
    "next_version",
    "read_manifest_dict",
    "save_bundle",
    "sha256_file",
    "verify_bundle",
]


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: manifest, the PyTorch network (eval mode, CPU) and the ONNX graph."""

    path: Path
    manifest: Manifest
    network: DropoutMLP
    onnx_bytes: bytes = field(repr=False)
    manifest_sha256: str

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX_FILE


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def discover(models_dir: Path) -> dict[str, dict[int, Path]]:
    """Find `<name>/<version>/` folders; names and versions that do not parse are ignored."""
    found: dict[str, dict[int, Path]] = {}
    if not models_dir.is_dir():
        return found
    for name_dir in sorted(models_dir.iterdir()):
        if not name_dir.is_dir() or not re.fullmatch(NAME_PATTERN, name_dir.name):
            continue
        versions = {
            int(child.name): child
            for child in name_dir.iterdir()
            # ASCII digits without a leading zero only: "²".isdigit() is true but int() rejects
            # it, and "007" would alias version 7 in a folder that load_bundle then refuses.
            if child.is_dir() and re.fullmatch(r"[1-9][0-9]*", child.name)
        }
        if versions:
            found[name_dir.name] = dict(sorted(versions.items()))
    return found


def next_version(models_dir: Path, name: str) -> int:
    """The version a new bundle of `name` gets: one more than the highest on disk."""
    return max(discover(models_dir).get(name, {}), default=0) + 1


def save_bundle(
    models_dir: Path,
    manifest_fields: dict[str, Any],
    network: DropoutMLP,
    onnx_bytes: bytes,
) -> Manifest:
    """Write a new version of a bundle and return its manifest.

    `manifest_fields` holds every manifest field except `version`, `files` and `created_at`,
    which are decided here. The bundle is assembled in a temporary folder and renamed into place,
    so a server scanning `models_dir` never sees half a bundle.
    """
    name = manifest_fields["name"]
    name_dir = models_dir / name
    name_dir.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().contiguous() for key, value in network.state_dict().items()}
    for _attempt in range(10):
        version = next_version(models_dir, name)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{version}-", dir=name_dir))
        try:
            save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
            (staging / ONNX_FILE).write_bytes(onnx_bytes)
            for written in (ONNX_FILE, WEIGHTS_FILE):
                # safetensors writes 0600; a server running as another user must read bundles.
                os.chmod(staging / written, 0o644)
            files = {f: sha256_file(staging / f) for f in (ONNX_FILE, WEIGHTS_FILE)}
            manifest = Manifest.model_validate(
                {
                    **manifest_fields,
                    "version": version,
                    "files": files,
                    "created_at": datetime.now(UTC),
                }
            )
            (staging / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
            os.chmod(staging / MANIFEST_FILE, 0o644)
            os.chmod(staging, 0o755)
            try:
                staging.rename(name_dir / str(version))
            except OSError:
                continue  # another writer took this version number; try the next one
            return manifest
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    raise BundleError(f"could not allocate a new version under {name_dir} after 10 attempts")


def _parse_manifest(manifest_path: Path, raw: bytes) -> Manifest:
    try:
        return Manifest.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise BundleError(f"{manifest_path}: invalid manifest: {problems}") from exc


def verify_bundle(path: Path) -> tuple[Manifest, str, dict[str, bytes]]:
    """Read a bundle's files once and check them against the manifest.

    Returns:
        The manifest, the sha256 of manifest.json (identifies this exact bundle), and the bytes
        of every listed file, so callers use exactly what was verified.

    Raises:
        BundleError: naming the file and the problem.
    """
    manifest_path = path / MANIFEST_FILE
    try:
        raw = manifest_path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{manifest_path}: cannot read the manifest ({exc.strerror})") from exc
    manifest = _parse_manifest(manifest_path, raw)
    if path.parent.name != manifest.name or path.name != str(manifest.version):
        raise BundleError(
            f"{manifest_path}: manifest says {manifest.name}/{manifest.version} "
            f"but the bundle lies in {path.parent.name}/{path.name}"
        )
    contents: dict[str, bytes] = {}
    for filename, expected in manifest.files.items():
        file_path = path / filename
        try:
            data = file_path.read_bytes()
        except OSError as exc:
            raise BundleError(f"{file_path}: file listed in the manifest is missing") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise BundleError(
                f"{file_path}: sha256 mismatch (manifest {expected[:12]}..., "
                f"file {actual[:12]}...); the file was changed after the bundle was written"
            )
        contents[filename] = data
    return manifest, hashlib.sha256(raw).hexdigest(), contents


def load_bundle(path: Path) -> Bundle:
    """Load and verify a bundle folder.

    Raises:
        BundleError: a file is missing or fails its checksum, the manifest does not match its
            schema or its folder, or the weights do not fit the declared architecture.
    """
    manifest, manifest_sha256, contents = verify_bundle(path)
    network = DropoutMLP(manifest.mlp_config())
    try:
        network.load_state_dict(load_safetensors(contents[WEIGHTS_FILE]), strict=True)
    except (SafetensorError, RuntimeError) as exc:
        raise BundleError(f"{path / WEIGHTS_FILE}: weights do not fit the manifest: {exc}") from exc
    network.eval()
    return Bundle(
        path=path,
        manifest=manifest,
        network=network,
        onnx_bytes=contents[ONNX_FILE],
        manifest_sha256=manifest_sha256,
    )


def read_manifest_dict(path: Path) -> dict[str, Any]:
    """The raw manifest JSON of a bundle folder (for tools that rewrite bundles)."""
    data: dict[str, Any] = json.loads((path / MANIFEST_FILE).read_text())
    return data
