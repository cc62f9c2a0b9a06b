"""The UCI benchmark's results: summaries, the published comparison, JSON and Markdown."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.uci.protocol import ProtocolResult, SplitResult
from bench.uci.published import PUBLISHED

__all__ = ["entry", "locked", "markdown", "pm", "summarise", "write_results"]


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (std with ddof=0 / sqrt(n)), as the published tables report."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std() / math.sqrt(array.size))


def summarise(results: Sequence[SplitResult]) -> dict[str, list[float]]:
    """[mean, standard error] of every score over the splits."""
    fields = ("rmse", "log_likelihood", "log_likelihood_grid_tau", "rmse_deterministic")
    summary = {name: list(_mean_se([getattr(r, name) for r in results])) for name in fields}
    protocol = [r.protocol for r in results if r.protocol is not None]
    if len(protocol) == len(results):
        summary["protocol_rmse"] = list(_mean_se([p.rmse for p in protocol]))
        summary["protocol_log_likelihood"] = list(_mean_se([p.log_likelihood for p in protocol]))
    return summary


def _within(ours: float, published: tuple[float, float], higher_is_better: bool) -> bool:
    """Ours, rounded as the published number is (2 decimals), no worse than mean + 1 SE."""
    mean, se = published
    value = round(ours, 2)
    return value >= mean - se if higher_is_better else value <= mean + se


def _beats(ours: float, published: tuple[float, float], higher_is_better: bool) -> bool:
    return ours > published[0] if higher_is_better else ours < published[0]


def entry(
    name: str, results: list[SplitResult], seconds: float, meta: dict[str, Any]
) -> dict[str, Any]:
    summary = summarise(results)
    entry: dict[str, Any] = {
        **meta,
        "splits": len(results),
        "seconds": seconds,
        "seconds_per_split": seconds / len(results),
        "summary": summary,
        "per_split": [dataclasses.asdict(r) for r in sorted(results, key=lambda r: r.split)],
    }
    reference = PUBLISHED.get(name)
    if reference is not None:
        grid, paper = reference["grid_2018"], reference["paper"]
        rmse, ll = summary["rmse"][0], summary["log_likelihood"][0]
        entry["published"] = {key: value._asdict() for key, value in reference.items()}
        entry["checks"] = {
            "rmse_within_1se_of_2018": _within(rmse, grid.rmse, higher_is_better=False),
            "ll_within_1se_of_2018": _within(ll, grid.log_likelihood, higher_is_better=True),
            "rmse_beats_paper": _beats(rmse, paper.rmse, higher_is_better=False),
            "ll_beats_paper": _beats(ll, paper.log_likelihood, higher_is_better=True),
        }
    return entry


def pm(pair: Sequence[float], digits: int = 3) -> str:
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown table, published numbers beside ours, then each command."""
    lines = [
        "# MC-dropout UCI benchmark (dropserve)",
        "",
        "Mean ± standard error over the splits run. LL: test log-likelihood per row (nats) with",
        "tau fitted on the validation rows; LL grid tau: the same networks with the selected grid",
        "tau instead. Protocol: the published protocol's own pick (best validation LL at the grid",
        "tau) and its scores, where the run had --protocol-selection.",
        "✓/✗: RMSE and LL no worse than the 2018 grid-search column + 1 SE; better than Table 1.",
        "",
        "| data set | splits | epochs | RMSE | LL | LL grid tau | protocol RMSE | protocol LL "
        "| 2018 RMSE | 2018 LL | paper RMSE | paper LL | vs 2018 | vs paper | s / split | device |",
        "|" + "---|" * 16,
    ]
    for name, entry in sorted(report["datasets"].items()):
        s = entry["summary"]
        pub = entry.get("published", {})
        checks = entry.get("checks", {})
        mark = {True: "✓", False: "✗"}
        grid = pub.get("grid_2018")
        paper = pub.get("paper")
        cells = [
            name,
            str(entry["splits"]),
            str(entry["settings"]["epochs"]),
            pm(s["rmse"]),
            pm(s["log_likelihood"]),
            pm(s["log_likelihood_grid_tau"]),
            pm(s["protocol_rmse"]) if "protocol_rmse" in s else "",
            pm(s["protocol_log_likelihood"]) if "protocol_rmse" in s else "",
            pm(grid["rmse"], 2) if grid else "",
            pm(grid["log_likelihood"], 2) if grid else "",
            pm(paper["rmse"], 2) if paper else "",
            pm(paper["log_likelihood"], 2) if paper else "",
            (mark[checks["rmse_within_1se_of_2018"]] + mark[checks["ll_within_1se_of_2018"]])
            if checks
            else "",
            (mark[checks["rmse_beats_paper"]] + mark[checks["ll_beats_paper"]]) if checks else "",
            f"{entry['seconds_per_split']:.0f}",
            entry["device"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Commands:", ""]
    for name, entry in sorted(report["datasets"].items()):
        lines.append(f"- {name} ({entry['date']}, {entry['seconds']:.0f} s): `{entry['command']}`")
    return "\n".join(lines) + "\n"


def previous_entry(out: Path, name: str) -> tuple[list[SplitResult], dict[str, Any]] | None:
    """The splits already in `<out>.json` for data set `name`, and their entry; None if none."""
    path = out.with_suffix(".json")
    if not path.is_file():
        return None
    found = json.loads(path.read_text())["datasets"].get(name)
    if found is None:
        return None
    results = []
    for raw in found["per_split"]:
        protocol = raw.get("protocol")
        fields = {**raw, "protocol": None if protocol is None else ProtocolResult(**protocol)}
        results.append(SplitResult(**fields))
    return results, found


def write_results(out: Path, entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Merge `entries` into `<out>.json` (same data set: replaced) and rewrite `<out>.md`."""
    path = out.with_suffix(".json")
    report: dict[str, Any] = {"datasets": {}}
    if path.is_file():
        report = json.loads(path.read_text())
    report["datasets"].update(entries)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, text in (
        (path, json.dumps(report, indent=2) + "\n"),
        (out.with_suffix(".md"), markdown(report)),
    ):
        # Hours of training end here: a process dying mid-write must not leave half a file
        # (os.replace is atomic; without an fsync a power cut may still lose the new text).
        scratch = target.with_suffix(target.suffix + ".tmp")
        scratch.write_text(text)
        os.replace(scratch, target)
    return report


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold `<out>.lock` so that runs extending the same results file in parallel processes
    (one data set each) do not overwrite each other's read-merge-write."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.with_suffix(".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
