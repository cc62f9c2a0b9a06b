"""How many inference threads each server process gets."""

from __future__ import annotations

import pytest

from service import config
from service.config import Settings


@pytest.mark.parametrize(
    ("cores", "processes", "threads", "expected"),
    [
        (2, 1, 0, 2),  # one per core
        (2, 2, 0, 1),  # the cores shared out among the processes
        (16, 3, 0, 5),
        (2, 4, 0, 1),  # at least one each
        (2, 2, 3, 3),  # an explicit count wins
        (4, 0, 0, 1),  # processes=0 is one per core, so one thread each
    ],
)
def test_inference_threads_per_process(
    monkeypatch: pytest.MonkeyPatch, cores: int, processes: int, threads: int, expected: int
) -> None:
    monkeypatch.setattr(config, "available_cpus", lambda: cores)
    settings = Settings(processes=processes, inference_threads=threads)
    assert settings.workers == expected
