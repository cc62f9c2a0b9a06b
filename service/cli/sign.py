"""`dropserve sign`: write the digest of bundles whose manifest is trusted as it stands."""

from __future__ import annotations

import argparse
from pathlib import Path

from service.cli.common import SubParsers, configure_logging

__all__ = ["add_sign"]


def add_sign(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "sign",
        help="write the manifest digest of bundles saved before manifests carried one",
        description="Check each bundle as the server does (files inside the models folder, "
        "checksums, schema, ONNX graph against the network on the manifest's rows), then write "
        "the digest of its manifest, which the server requires. Signing says that the manifest's "
        "content is trusted: use it on bundles saved by an older dropserve, or after reviewing a "
        "deliberate edit.",
    )
    parser.add_argument("bundles", type=Path, nargs="+", metavar="BUNDLE", help="e.g. models/x/1")
    parser.set_defaults(handler=_sign)


def _sign(args: argparse.Namespace) -> int:
    from service.bundle import ReadPolicy, sign_bundle
    from service.config import get_settings

    configure_logging(quiet=False)
    settings = get_settings()
    policy = ReadPolicy(
        follow_outside_symlinks=settings.follow_outside_symlinks,
        max_file_bytes=settings.max_bundle_file_bytes,
    )
    for bundle in args.bundles:
        manifest = sign_bundle(bundle, policy)
        print(f"{bundle}: signed {manifest.name}/{manifest.version} ({manifest.digest})")
    return 0
