"""`dropserve serve` refuses bad settings with a clear message before it binds a port."""

from __future__ import annotations

import pytest

from service.cli import build_parser, main


def test_bad_device_flag_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--device", "gpu"]) == 2
    assert "invalid settings: device" in capsys.readouterr().err


def test_bad_environment_value_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DROPSERVE_PORT", "eighty")
    assert main(["serve"]) == 2
    assert "invalid settings: port: Input should be a valid integer" in capsys.readouterr().err


def test_unset_flags_leave_the_environment_in_force() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.models_dir, args.device, args.log_level) == (None,) * 5
