"""The manifest's own digest: a sha256 of its canonical JSON, stored in its `digest` field.

The file digests in `files` cover the graph and the weights but not the manifest, whose
normalisation statistics and tau the Monte-Carlo engine reads directly. The digest covers every
field of the document (the engines' and the rest), so an edit made without signing again is
refused. It is not a secret: whoever can write the models folder can sign again, which is why
the load also checks that the two engines agree (service.bundle.parity) and why production
mounts keep the models folder read-only to the server.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from service.errors import BundleError

__all__ = ["DIGEST_FIELD", "DIGEST_PATTERN", "check_digest", "compute_digest", "parse_document"]

DIGEST_FIELD = "digest"
_ALGORITHM = "sha256"
DIGEST_PATTERN = rf"^{_ALGORITHM}:[0-9a-f]{{64}}$"


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicated = sorted({key for key in keys if keys.count(key) > 1})
    if duplicated:
        # Two parsers may keep different copies; the digest and the engines must see one.
        raise ValueError(f"duplicate keys {duplicated}")
    return dict(pairs)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def parse_document(raw: bytes, manifest_path: Path) -> dict[str, Any]:
    """The manifest's JSON object, parsed once for both the digest and the schema.

    Raises:
        BundleError: the bytes are not one JSON object without duplicate keys or NaN.
    """
    try:
        document = json.loads(
            raw, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"{manifest_path}: invalid manifest: not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise BundleError(f"{manifest_path}: invalid manifest: the JSON is not an object")
    return document


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """The document without its digest, keys sorted, no spaces, ASCII: what the digest covers."""
    content = {key: value for key, value in document.items() if key != DIGEST_FIELD}
    text = json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def compute_digest(document: dict[str, Any]) -> str:
    """`sha256:<hex>` of the canonical document."""
    return f"{_ALGORITHM}:{hashlib.sha256(canonical_bytes(document)).hexdigest()}"


def check_digest(document: dict[str, Any], manifest_path: Path) -> None:
    """Refuse a manifest whose digest is absent or does not match its content.

    Raises:
        BundleError: naming the manifest and the command that signs it.
    """
    bundle = manifest_path.parent
    stored = document.get(DIGEST_FIELD)
    if stored is None:
        # Accepting unsigned manifests would let an edit pass by deleting the digest too.
        raise BundleError(
            f"{manifest_path}: the manifest has no digest, so an edit to it could not be "
            f"detected; if this bundle is trusted, sign it with `dropserve sign {bundle}` "
            "(bundles saved by this version of dropserve are signed already)"
        )
    if stored != compute_digest(document):
        raise BundleError(
            f"{manifest_path}: the manifest does not match its digest; it was edited after the "
            f"bundle was signed. Restore the original, or review the change and sign it with "
            f"`dropserve sign {bundle}`"
        )
