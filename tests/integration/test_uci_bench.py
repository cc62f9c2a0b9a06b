"""The UCI benchmark runner: data sets, the protocol, results files, and a quick run end to end.

Every data set here is made in tmp_path in the layout of ../shared/data/uci/<dataset>/; nothing
reads the shared folder.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import bench.uci.cli as runner
from bench.uci.cli import main
from bench.uci.data import load_dataset, regenerate_splits
from bench.uci.protocol import ProtocolSettings, SplitResult, run_splits
from bench.uci.results import entry as results_entry
from bench.uci.results import locked, write_results


def write_dataset(folder: Path, rows: int, *, with_index_files: bool, seed: int = 0) -> Path:
    """A smooth 3-input regression problem as data.txt (+ index files like the shared ones)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, size=(rows, 3))
    y = 3.0 * np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + 0.3 * rng.normal(size=rows) + 10.0
    folder.mkdir(parents=True)
    np.savetxt(folder / "data.txt", np.column_stack([x, y]), fmt="%.6f")
    (folder / "dropout_rates.txt").write_text("0.01\n0.05\n")
    (folder / "tau_values.txt").write_text("1.0\n4.0\n")
    (folder / "n_hidden.txt").write_text("16\n")
    if with_index_files:
        (folder / "index_features.txt").write_text("0\n1\n2\n")
        (folder / "index_target.txt").write_text("3\n")
        (folder / "n_splits.txt").write_text("3\n")
        for k, (train, test) in enumerate(regenerate_splits(rows, 3)):
            np.savetxt(folder / f"index_train_{k}.txt", train, fmt="%d")
            np.savetxt(folder / f"index_test_{k}.txt", test, fmt="%d")
    return folder


def test_regenerated_splits_follow_the_published_rule() -> None:
    splits = regenerate_splits(10, 2)
    np.random.seed(1)
    for train, test in splits:
        order = np.random.choice(range(10), 10, replace=False)
        assert train.tolist() == order[:9].tolist()
        assert test.tolist() == order[9:].tolist()


def test_missing_index_files_are_regenerated(tmp_path: Path) -> None:
    with_files = load_dataset(write_dataset(tmp_path / "a", 60, with_index_files=True))
    without = load_dataset(write_dataset(tmp_path / "b", 60, with_index_files=False))
    assert not with_files.regenerated_splits
    assert without.regenerated_splits
    assert len(without.splits) == 20
    for (train_a, test_a), (train_b, test_b) in zip(
        with_files.splits, without.splits[:3], strict=True
    ):
        np.testing.assert_array_equal(train_a, train_b)
        np.testing.assert_array_equal(test_a, test_b)
    np.testing.assert_array_equal(with_files.x, without.x)


def test_protocol_scores_are_finite_and_pick_from_the_grid(tmp_path: Path) -> None:
    dataset = load_dataset(write_dataset(tmp_path / "toy", 120, with_index_files=True))
    settings = ProtocolSettings(
        epochs=30, validation_samples=20, test_samples=50, protocol_selection=True
    )
    results = run_splits(dataset, [0, 2], settings, torch.device("cpu"))
    assert [r.split for r in results] == [0, 2]
    for result in results:
        assert math.isfinite(result.rmse)
        assert math.isfinite(result.log_likelihood)
        assert result.dropout in dataset.dropout_rates
        assert result.prior_tau in dataset.tau_values
        assert result.tau > 0
        assert result.protocol is not None
        assert math.isfinite(result.protocol.log_likelihood)
        assert result.protocol.prior_tau in dataset.tau_values


def test_quick_benchmark_writes_finite_results(tmp_path: Path) -> None:
    data_dir = tmp_path / "uci"
    write_dataset(data_dir / "toy", 150, with_index_files=True)
    write_dataset(data_dir / "unseen", 100, with_index_files=False, seed=1)
    out = tmp_path / "results" / "quick"
    argv = ["--data-dir", str(data_dir), "--quick", "--epochs", "20", "--out", str(out), "--quiet"]
    assert main([*argv, "--datasets", "toy", "--protocol-selection"]) == 0
    assert main([*argv, "--datasets", "unseen"]) == 0  # merged into the same results
    report = json.loads(out.with_suffix(".json").read_text())
    assert set(report["datasets"]) == {"toy", "unseen"}
    for entry in report["datasets"].values():
        assert entry["splits"] == 1
        assert all(math.isfinite(v) for pair in entry["summary"].values() for v in pair)
    assert report["datasets"]["unseen"]["regenerated_splits"] is True
    assert "protocol_rmse" in report["datasets"]["toy"]["summary"]
    table = out.with_suffix(".md").read_text()
    assert "| toy | 1 | 20 |" in table
    assert "--quick" in table


def test_extend_adds_splits_to_earlier_results(tmp_path: Path) -> None:
    data_dir = tmp_path / "uci"
    write_dataset(data_dir / "toy", 150, with_index_files=True)
    out = tmp_path / "results" / "ext"
    argv = ["--data-dir", str(data_dir), "--datasets", "toy", "--quick", "--out", str(out)]
    argv += ["--quiet", "--protocol-selection"]

    def run(*extra: str) -> dict[str, Any]:
        assert main([*argv, "--epochs", "20", *extra]) == 0
        report: dict[str, Any] = json.loads(out.with_suffix(".json").read_text())
        return report["datasets"]["toy"]

    first = run()
    extended = run("--first-split", "1", "--splits", "2", "--extend")
    assert [s["split"] for s in extended["per_split"]] == [0, 1, 2]
    assert extended["per_split"][0] == first["per_split"][0]
    assert extended["splits"] == 3
    assert "&& python -m bench.uci" in extended["command"]
    again = run("--first-split", "2", "--splits", "1", "--extend")  # a split run again replaces
    assert [s["split"] for s in again["per_split"]] == [0, 1, 2]
    with pytest.raises(SystemExit, match="other settings"):
        main([*argv, "--epochs", "21", "--extend", "--first-split", "1", "--splits", "1"])


def test_a_run_extending_the_results_waits_for_another_holding_them(tmp_path: Path) -> None:
    # Two data sets extended by two processes: each read-merge-write runs under the lock,
    # so neither can drop the other's entry.
    out = tmp_path / "results" / "shared"
    wrote = threading.Event()
    one = SplitResult(0, 1.0, -1.0, -1.0, 1.0, 0.05, 1.0, 1.0, -1.0)

    def finished(name: str) -> dict[str, dict[str, Any]]:
        return {
            name: results_entry(
                name,
                [one],
                1.0,
                {"command": "t", "date": "d", "device": "cpu", "settings": {"epochs": 1}},
            )
        }

    def other_run() -> None:
        with locked(out):
            write_results(out, finished("b"))
            wrote.set()

    with locked(out):
        write_results(out, finished("a"))
        writer = threading.Thread(target=other_run)
        writer.start()
        assert not wrote.wait(0.3)  # blocked while this run holds the file
    writer.join(timeout=10)
    assert wrote.is_set()
    report = json.loads(out.with_suffix(".json").read_text())
    assert set(report["datasets"]) == {"a", "b"}
    assert not list(out.parent.glob("*.tmp"))


def test_the_runner_reads_and_writes_earlier_results_under_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "uci"
    write_dataset(data_dir / "toy", 150, with_index_files=True)
    out = tmp_path / "results" / "locked"
    held: list[bool] = []
    events: list[str] = []

    @contextlib.contextmanager
    def recording_lock(path: Path) -> Iterator[None]:
        assert path == out
        with locked(path):
            held.append(True)
            yield
            held.pop()

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            events.append(f"{name} {'locked' if held else 'UNLOCKED'}")
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(runner, "locked", recording_lock)
    monkeypatch.setattr(runner, "previous_entry", spy("read", runner.previous_entry))
    monkeypatch.setattr(runner, "write_results", spy("write", runner.write_results))
    argv = ["--data-dir", str(data_dir), "--quick", "--epochs", "20", "--out", str(out), "--quiet"]
    assert runner.main(argv) == 0
    assert runner.main([*argv, "--first-split", "1", "--splits", "1", "--extend"]) == 0
    assert events == ["write locked", "read locked", "write locked"]


def test_the_runner_needs_only_torch_and_numpy() -> None:
    # The GPU script runs on machines with torch but without the serving stack.
    blocked = ["pydantic", "pydantic_settings", "fastapi", "onnx", "onnxruntime", "safetensors"]
    code = (
        f"import sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n"
        "import bench.uci.cli, bench.uci.protocol\n"
    )
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_python_m_bench_uci_is_the_runner() -> None:
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "bench.uci", "--help"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m bench.uci")
    assert "--protocol-selection" in done.stdout
