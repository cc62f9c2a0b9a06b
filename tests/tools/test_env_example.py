""".env.example documents every setting, with its real default, and holds no secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.config import Settings

SECRET_WORDS = re.compile(r"(SECRET|TOKEN|PASSWORD|API_KEY|CREDENTIAL)", re.I)


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """KEY=value lines in file order (duplicates kept, so they can be reported)."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not a KEY=value line: {line!r}"
            pairs.append((key.strip(), value.strip()))
    return pairs


@pytest.fixture(scope="module")
def pairs(repo_root: Path) -> list[tuple[str, str]]:
    """The KEY=value lines of .env.example."""
    return read_pairs(repo_root / ".env.example")


def test_documents_every_setting_once(pairs: list[tuple[str, str]]) -> None:
    prefix = str(Settings.model_config.get("env_prefix", ""))
    expected = {f"{prefix}{name}".upper() for name in Settings.model_fields}
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"a variable is listed twice: {keys}"
    assert set(keys) == expected, (
        f"missing: {sorted(expected - set(keys))}; not settings: {sorted(set(keys) - expected)}"
    )


def test_values_are_the_defaults(
    pairs: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    for key in [k for k in os.environ if k.startswith("DROPSERVE_")]:
        monkeypatch.delenv(key)
    defaults = Settings().model_dump()
    for key, value in pairs:
        monkeypatch.setenv(key, value)
    from_file = Settings().model_dump()
    differ = {k: (from_file[k], defaults[k]) for k in defaults if from_file[k] != defaults[k]}
    assert not differ, f".env.example values that are not the defaults (file, default): {differ}"


def test_holds_no_secrets(pairs: list[tuple[str, str]]) -> None:
    secrets = [key for key, _ in pairs if SECRET_WORDS.search(key)]
    assert secrets, "the secret settings should be documented (with empty values)"
    assert not [key for key, value in pairs if SECRET_WORDS.search(key) and value]
