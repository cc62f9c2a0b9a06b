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

from service.bundle.digest import DIGEST_FIELD, check_digest, compute_digest, parse_document
from service.bundle.files import MAX_MANIFEST_BYTES, ReadPolicy, read_bundle_file
from service.bundle.manifest import (
    BUNDLE_FILES,
    MANIFEST_FILE,
    NAME_PATTERN,
    ONNX_FILE,
    WEIGHTS_FILE,
    Manifest,
)
from service.bundle.parity import check_parity
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
    "sign_bundle",
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

    `manifest_fields` holds every manifest field except `version`, `files`, `created_at` and
    `digest`, which are decided here. The bundle is assembled in a temporary folder and
    renamed into place, so a server scanning `models_dir` never sees half a bundle.
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
                    **{k: v for k, v in manifest_fields.items() if k != DIGEST_FIELD},
                    "version": version,
                    "files": files,
                    "created_at": datetime.now(UTC),
                }
            )
            # The digest covers the document exactly as it is read back, not the model.
            document = json.loads(manifest.model_dump_json(exclude={DIGEST_FIELD}))
            document[DIGEST_FIELD] = compute_digest(document)
            _write_manifest(staging, document)
            manifest = Manifest.model_validate(document)
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


def _validate(manifest_path: Path, document: dict[str, Any]) -> Manifest:
    try:
        return Manifest.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise BundleError(f"{manifest_path}: invalid manifest: {problems}") from exc


def _verify(
    path: Path, policy: ReadPolicy, *, require_digest: bool
) -> tuple[Manifest, dict[str, Any], str, dict[str, bytes]]:
    policy.check_folder(path)
    manifest_path = path / MANIFEST_FILE
    raw = read_bundle_file(
        manifest_path, path, policy, label="the manifest", max_bytes=MAX_MANIFEST_BYTES
    )
    document = parse_document(raw, manifest_path)
    manifest = _validate(manifest_path, document)
    if path.parent.name != manifest.name or path.name != str(manifest.version):
        raise BundleError(
            f"{manifest_path}: manifest says {manifest.name}/{manifest.version} "
            f"but the bundle lies in {path.parent.name}/{path.name}"
        )
    if require_digest:
        check_digest(document, manifest_path)
    contents: dict[str, bytes] = {}
    for filename in BUNDLE_FILES:  # the schema allows no other names in `files`
        file_path = path / filename
        data = read_bundle_file(file_path, path, policy, label="file listed in the manifest")
        if hashlib.sha256(data).hexdigest() != manifest.files[filename]:
            raise BundleError(
                f"{file_path}: sha256 mismatch with the manifest; the file was changed after "
                "the bundle was written. Restore it, or train or export the bundle again"
            )
        contents[filename] = data
    return manifest, document, hashlib.sha256(raw).hexdigest(), contents


def verify_bundle(
    path: Path, policy: ReadPolicy | None = None
) -> tuple[Manifest, str, dict[str, bytes]]:
    """Read a bundle's files once and check them against the manifest and its digest.

    Args:
        path: the bundle folder, `<models_dir>/<name>/<version>`.
        policy: where its files may live and how large they may be (default: the bundle's
            grandparent, no symlinks out of it, `DEFAULT_MAX_FILE_BYTES`).

    Returns:
        The manifest, the sha256 of manifest.json (identifies this exact bundle), and the bytes
        of every listed file, so callers use exactly what was verified.

    Raises:
        BundleError: naming the file and the problem.
    """
    manifest, _, manifest_sha256, contents = _verify(
        path, policy or ReadPolicy(), require_digest=True
    )
    return manifest, manifest_sha256, contents


def _network(path: Path, manifest: Manifest, weights: bytes) -> DropoutMLP:
    network = DropoutMLP(manifest.mlp_config())
    try:
        network.load_state_dict(load_safetensors(weights), strict=True)
    except (SafetensorError, RuntimeError) as exc:
        raise BundleError(f"{path / WEIGHTS_FILE}: weights do not fit the manifest: {exc}") from exc
    return network.eval()


def load_bundle(path: Path, policy: ReadPolicy | None = None) -> Bundle:
    """Load and verify a bundle folder.

    Args:
        path: the bundle folder, `<models_dir>/<name>/<version>`.
        policy: as for `verify_bundle`.

    Raises:
        BundleError: a file is missing, outside the models folder, not a regular file, too
            large or fails its checksum; the manifest does not match its schema, its folder or
            its digest; the weights do not fit the declared architecture; or the network and
            the ONNX graph disagree on the manifest's rows.
    """
    manifest, manifest_sha256, contents = verify_bundle(path, policy)
    network = _network(path, manifest, contents[WEIGHTS_FILE])
    check_parity(path, manifest, network, contents[ONNX_FILE])
    return Bundle(
        path=path,
        manifest=manifest,
        network=network,
        onnx_bytes=contents[ONNX_FILE],
        manifest_sha256=manifest_sha256,
    )


def sign_bundle(path: Path, policy: ReadPolicy | None = None) -> Manifest:
    """Write the digest of a bundle's manifest, after every other check of `load_bundle`.

    Signing says the manifest's content is trusted as it stands: use it on bundles saved before
    manifests carried a digest, or after reviewing a deliberate edit.

    Raises:
        BundleError: the bundle fails any check but the digest (then nothing is written).
    """
    manifest, document, _, contents = _verify(path, policy or ReadPolicy(), require_digest=False)
    check_parity(
        path, manifest, _network(path, manifest, contents[WEIGHTS_FILE]), contents[ONNX_FILE]
    )
    document[DIGEST_FIELD] = compute_digest(document)
    _write_manifest(path, document)
    return Manifest.model_validate(document)


def _write_manifest(folder: Path, document: dict[str, Any]) -> None:
    # Written beside and renamed over, so a reload never reads half a manifest.
    staged = folder / f".{MANIFEST_FILE}.{os.getpid()}.tmp"
    try:
        staged.write_text(json.dumps(document, indent=2) + "\n")
        os.chmod(staged, 0o644)
        staged.replace(folder / MANIFEST_FILE)
    except OSError as exc:
        staged.unlink(missing_ok=True)
        raise BundleError(
            f"{folder / MANIFEST_FILE}: cannot write the manifest ({exc.strerror}); run this "
            "as a user who may write the bundle's folder"
        ) from exc


def read_manifest_dict(path: Path) -> dict[str, Any]:
    """The raw manifest JSON of a bundle folder (for tools that rewrite bundles)."""
    data: dict[str, Any] = json.loads((path / MANIFEST_FILE).read_text())
    return data
