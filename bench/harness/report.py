"""Shared output of the benchmark suite: a table, `RATIO <name> <value>` lines, a JSON file."""

from __future__ import annotations

import json
import os
import platform
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "RESULTS_DIR",
    "machine_info",
    "machine_slug",
    "print_ratios",
    "print_table",
    "save_results",
]

# BENCH_RESULTS_DIR redirects the results, e.g. to the output folder bench/gpu_check.sh is given.
RESULTS_DIR = Path(
    os.environ.get("BENCH_RESULTS_DIR") or Path(__file__).resolve().parents[1] / "results"
)


def machine_info() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def machine_slug() -> str:
    """`cpu2`, or the GPU's name in lower case with dashes (`nvidia-h200`)."""
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0).lower()
        return "".join(c if c.isalnum() else "-" for c in name).strip("-")
    return f"cpu{os.cpu_count()}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[[_fmt(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def print_ratios(ratios: dict[str, float]) -> None:
    for name, value in ratios.items():
        print(f"RATIO {name} {value:.3g}")


def save_results(suite: str, payload: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """Merge `payload` under `suite` into bench/results/<date>-<machine>.json.

    A quick run is filed as `<suite>-quick`, so it never replaces a full run's numbers.
    """
    if payload.get("quick"):
        suite = f"{suite}-quick"
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    path = results_dir / f"{day}-{machine_slug()}.json"
    results_dir.mkdir(parents=True, exist_ok=True)
    existing: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    existing["machine"] = machine_info()
    existing[suite] = {"finished_at": datetime.now(UTC).isoformat(), **payload}
    path.write_text(json.dumps(existing, indent=2) + "\n")
    return path


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
