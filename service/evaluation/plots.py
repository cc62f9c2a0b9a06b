"""PNG plots of an evaluation (matplotlib, the optional `plots` extra, drawn with Agg).

Regression: the calibration curve of the central intervals (observed against nominal coverage)
and |error| against the predicted std. Classification: reliability diagrams of the deterministic
and the MC probabilities, and the error rate against the predictive entropy. Figures are built
with the object API on an Agg canvas, so no global pyplot state or display is involved.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from service.evaluation.classification import ClassificationRows
from service.evaluation.regression import LEVELS, RegressionRows
from service.evaluation.run import EvaluationReport
from service.scoring import central_coverage, expected_calibration_error, reliability

__all__ = ["write_plots"]

_CURVE_LEVELS = np.linspace(0.01, 0.99, 99)
_QUANTILE_BINS = 10


def _figure(columns: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(5.0 * columns, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, [figure.add_subplot(1, columns, i + 1) for i in range(columns)]


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, format="png", dpi=110)
    return path


def _coverage_curve(scored: RegressionRows, title: str, path: Path) -> Path:
    figure, (axes,) = _figure()
    observed = central_coverage(scored.pit.ravel(), list(_CURVE_LEVELS))
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    axes.plot(_CURVE_LEVELS, observed, label="MC mixture, every level")
    served = [
        float(np.mean((scored.lower[lv] <= scored.targets) & (scored.targets <= scored.upper[lv])))
        for lv in LEVELS
    ]
    axes.scatter(LEVELS, served, color="C3", zorder=3, label="served intervals")
    axes.set(
        xlabel="nominal coverage of the central interval",
        ylabel="observed coverage",
        title=title,
        xlim=(0, 1),
        ylim=(0, 1),
    )
    axes.legend(loc="upper left")
    return _save(figure, path)


def _binned(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> tuple[list[float], list[float]]:
    """Mean of x and y in up to 10 bins of equal row counts along x."""
    order = np.argsort(x, kind="mergesort")
    chunks = [chunk for chunk in np.array_split(order, min(_QUANTILE_BINS, x.size)) if chunk.size]
    return [float(x[c].mean()) for c in chunks], [float(y[c].mean()) for c in chunks]


def _error_vs_std(scored: RegressionRows, title: str, path: Path) -> Path:
    figure, (axes,) = _figure()
    std = scored.std.ravel()
    error = np.abs(scored.targets - scored.mean).ravel()
    axes.scatter(std, error, s=8, alpha=0.4, label="rows")
    centres, means = _binned(std, error)
    axes.plot(centres, means, color="C3", marker="o", label="mean |error| per std decile")
    top = float(max(std.max(), 1e-12))
    # For a Gaussian of std s, E|error| = s sqrt(2/pi): where a calibrated model's means lie.
    axes.plot(
        [0, top],
        [0, top * math.sqrt(2 / math.pi)],
        color="grey",
        linestyle="--",
        label="std x sqrt(2/pi)",
    )
    axes.set(xlabel="predicted std (MC mixture)", ylabel="|target - MC mean|", title=title)
    axes.legend(loc="upper left")
    return _save(figure, path)


def _reliability(scored: ClassificationRows, title: str, path: Path) -> Path:
    figure, panels = _figure(columns=2)
    engines = (("deterministic", scored.deterministic), ("MC dropout", scored.probabilities))
    for axes, (name, probabilities) in zip(panels, engines, strict=True):
        table = reliability(probabilities, scored.labels)
        filled = table.counts > 0
        width = float(table.edges[1] - table.edges[0])
        axes.bar(
            table.edges[:-1][filled],
            table.accuracy[filled],
            width=width,
            align="edge",
            edgecolor="black",
            alpha=0.6,
            label="accuracy per bin",
        )
        axes.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
        axes.scatter(
            table.confidence[filled],
            table.accuracy[filled],
            s=4.0 + 60.0 * table.counts[filled] / table.counts.sum(),
            color="C3",
            zorder=3,
            label="bin mean (area ~ rows)",
        )
        ece = expected_calibration_error(probabilities, scored.labels)
        axes.set(
            xlabel="confidence (top-class probability)",
            ylabel="accuracy",
            title=f"{title}\n{name}: ECE {ece:.4f}",
            xlim=(0, 1),
            ylim=(0, 1.02),
        )
        axes.legend(loc="upper left", fontsize="small")  # low confidences are mostly empty
    return _save(figure, path)


def _error_vs_entropy(scored: ClassificationRows, title: str, path: Path) -> Path:
    figure, (axes,) = _figure()
    centres, rates = _binned(scored.predictive_entropy, scored.mc_errors.astype(np.float64))
    axes.plot(centres, rates, marker="o")
    axes.set(
        xlabel="predictive entropy (nats), decile mean",
        ylabel="share of wrong MC predictions",
        title=title,
    )
    axes.set_ylim(bottom=0.0)
    return _save(figure, path)


def write_plots(report: EvaluationReport, folder: Path) -> list[Path]:
    """Write the report's plots as PNG files into `folder` (created if missing); returns them."""
    folder.mkdir(parents=True, exist_ok=True)
    title = f"{report.model} v{report.version}, {report.n_rows} rows"
    scored = report.scored
    if isinstance(scored, RegressionRows):
        return [
            _coverage_curve(scored, title, folder / "coverage.png"),
            _error_vs_std(scored, title, folder / "error_vs_std.png"),
        ]
    return [
        _reliability(scored, title, folder / "reliability.png"),
        _error_vs_entropy(scored, title, folder / "error_vs_entropy.png"),
    ]
