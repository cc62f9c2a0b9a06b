"""docs/configuration.md is exactly what scripts/gen_config_doc.py writes from the settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts import gen_config_doc
from scripts.gen_config_doc import DOC_PATH, render
from service.config import Settings
from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "gen_config_doc.py"


def test_configuration_page_is_generated_from_settings() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is stale; regenerate it: "
        "python scripts/gen_config_doc.py > docs/configuration.md"
    )


def test_every_setting_has_one_row_with_a_description() -> None:
    rows = [line for line in render().splitlines() if line.startswith("| `DROPSERVE_")]
    assert [row.split("`")[1] for row in rows] == [
        f"DROPSERVE_{name.upper()}" for name in Settings.model_fields
    ]
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert len(cells) == 4, row
        assert all(cells), row


def test_check_flag_passes_on_the_committed_page() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_check_flag_fails_on_a_stale_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(render().replace("`DROPSERVE_PORT`", "`DROPSERVE_PORTS`"), encoding="utf-8")
    monkeypatch.setattr(gen_config_doc, "DOC_PATH", stale)
    assert gen_config_doc.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "-| `DROPSERVE_PORTS`" in err
    assert "+| `DROPSERVE_PORT`" in err
    assert "python scripts/gen_config_doc.py > docs/configuration.md" in err
