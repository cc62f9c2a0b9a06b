"""What an import is told besides the file: names, task, dropout, tau or calibration data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from service.bundle.manifest import NAME_PATTERN
from service.model import DropoutStyle, Task

__all__ = ["ImportOptions"]


@dataclass(frozen=True)
class ImportOptions:
    """The metadata a network file does not hold, and where to write the bundle.

    None means "not given": the importer infers what it can and says what it cannot.
    """

    name: str
    models_dir: Path
    features: tuple[str, ...] | None = None
    features_from: Path | None = None
    targets: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None
    task: Task | None = None
    dropout: tuple[float, ...] | None = None
    input_dropout: float | None = None
    style: DropoutStyle = "inverted"
    calibrate: Path | None = None
    tau: tuple[float, ...] | None = None
    mc_samples: int = 1000
    seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(NAME_PATTERN, self.name):
            raise ValueError(
                f"model name {self.name!r} is not allowed: use lower-case letters, digits, "
                "'.', '_' or '-', starting with a letter or digit (at most 63 characters)"
            )
        if self.input_dropout is not None and not 0.0 <= self.input_dropout < 1.0:
            raise ValueError(f"--input-dropout must lie in [0, 1), got {self.input_dropout}")
        if self.mc_samples < 2:
            raise ValueError(f"--tau-samples must be at least 2, got {self.mc_samples}")
        if self.features is not None and self.features_from is not None:
            raise ValueError("pass --features or --features-from, not both")
        if self.tau is not None and self.calibrate is not None:
            raise ValueError("pass --tau or --calibrate, not both: --calibrate fits tau")
        if self.tau is not None and not all(t > 0.0 for t in self.tau):
            raise ValueError(f"tau is a precision and must be positive, got {list(self.tau)}")
