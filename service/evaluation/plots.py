"""PNG plots of an evaluation (matplotlib, the optional `plots` extra, drawn with Agg).

Regression: the calibration curve of the central intervals (observed against nominal coverage)
and |error| against the predicted std. Classification: reliability diagrams of the deterministic
and the MC probabilities, and the error rate against the predictive entropy. Figures are built
with the object API on an Agg canvas, so no global pyplot state or display is involved.

Axes fit the data rather than start at 0, bins show how many rows they hold (a bin of a few
rows is drawn faint and hatched: its accuracy is mostly noise), and binned means are drawn as
markers, never joined, since a line between far-apart bins suggests values nobody measured.
"""

from __future__ import annotations

import math
import textwrap
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

__all__ = [
    "CAPTIONS",
    "MIN_BIN_ROWS",
    "coverage_figure",
    "error_vs_entropy_figure",
    "error_vs_std_figure",
    "reliability_figure",
    "write_plots",
]

_CURVE_LEVELS = np.linspace(0.01, 0.99, 99)
_QUANTILE_BINS = 10
# Fewer rows than this in a bin: its accuracy or error rate is too noisy to draw as solid.
MIN_BIN_ROWS = 5
# Rows per bin of the binned means: with fewer rows in all, each row is drawn on its own.
_ROWS_PER_MEAN = 20
_SPARSE = {"alpha": 0.15, "hatch": "//"}

# How to read each plot, printed under it: a PNG travels without the docs that explain it.
CAPTIONS = {
    "coverage": "A curve on the diagonal is calibrated: a p % interval holds p % of the targets. "
    "Below it the intervals are too narrow (over-confident); above it, too wide.",
    "error_vs_std": "Points should rise to the right: a larger predicted std should mean a larger "
    "error. Red markers on the dashed line are calibrated; above it, the std is too small.",
    "reliability": "Bars on the diagonal are calibrated; below it, over-confident; above it, "
    f"under-confident. Faint hatched bins hold under {MIN_BIN_ROWS} rows.",
    "error_vs_entropy": "Points should rise to the right: rows of higher entropy (less sure) "
    "should be wrong more often. A flat row of points means the entropy does not flag errors.",
}
# Characters per inch of figure width at the caption's font size, to wrap it before drawing.
_CAPTION_CHARS_PER_INCH = 15


def _figure(columns: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(5.0 * columns, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, [figure.add_subplot(1, columns, i + 1) for i in range(columns)]


def _caption(figure: Figure, plot: str) -> None:
    """The plot's caption under the axes, small and wrapped; as the figure's x label, the
    constrained layout makes room for it, so it never overlaps the axes."""
    width = int(figure.get_figwidth() * _CAPTION_CHARS_PER_INCH)
    figure.supxlabel(
        textwrap.fill(CAPTIONS[plot], width), fontsize="small", color="dimgrey", gid="caption"
    )


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, format="png", dpi=110)
    return path


def coverage_figure(scored: RegressionRows, title: str) -> Figure:
    """Observed against nominal coverage of the central intervals."""
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
    _caption(figure, "coverage")
    return figure


def _binned(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> tuple[list[float], list[float], list[int]]:
    """Mean of x and y, and the rows, in up to 10 bins of equal row counts along x, each of at
    least `_ROWS_PER_MEAN` rows (one bin when there are fewer rows than that)."""
    order = np.argsort(x, kind="mergesort")
    bins = max(1, min(_QUANTILE_BINS, x.size // _ROWS_PER_MEAN))
    chunks = [chunk for chunk in np.array_split(order, bins) if chunk.size]
    return (
        [float(x[c].mean()) for c in chunks],
        [float(y[c].mean()) for c in chunks],
        [int(c.size) for c in chunks],
    )


def _fit_x(axes: Axes, values: npt.NDArray[np.float64]) -> None:
    """x limits around the data with a 5 % margin, not from 0: the spread is what matters.
    The values plotted (a std, an entropy) are never negative, nor is the axis."""
    low, high = float(values.min()), float(values.max())
    margin = 0.05 * (high - low) if high > low else max(abs(high) * 0.05, 1e-3)
    axes.set_xlim(max(low - margin, 0.0), high + margin)


def error_vs_std_figure(scored: RegressionRows, title: str) -> Figure:
    """|error| of the MC mean against the predicted std, per row and per std bin."""
    figure, (axes,) = _figure()
    std = scored.std.ravel()
    error = np.abs(scored.targets - scored.mean).ravel()
    axes.scatter(std, error, s=8, alpha=0.4, label="rows")
    centres, means, counts = _binned(std, error)
    axes.plot(
        centres,
        means,
        color="C3",
        marker="o",
        linestyle="none",
        label=f"mean |error| per std bin ({min(counts)}+ rows each)",
    )
    low, high = float(std.min()), float(max(std.max(), 1e-12))
    # For a Gaussian of std s, E|error| = s sqrt(2/pi): where a calibrated model's means lie.
    axes.plot(
        [low, high],
        [low * math.sqrt(2 / math.pi), high * math.sqrt(2 / math.pi)],
        color="grey",
        linestyle="--",
        label="std x sqrt(2/pi)",
    )
    _fit_x(axes, std)
    axes.set(xlabel="predicted std (MC mixture)", ylabel="|target - MC mean|", title=title)
    axes.set_ylim(bottom=0.0)
    axes.legend(loc="upper left")
    _caption(figure, "error_vs_std")
    return figure


def reliability_figure(scored: ClassificationRows, title: str) -> Figure:
    """Reliability diagrams of both engines, each bin labelled with its rows."""
    figure, panels = _figure(columns=2)
    engines = (("deterministic", scored.deterministic), ("MC dropout", scored.probabilities))
    for axes, (name, probabilities) in zip(panels, engines, strict=True):
        table = reliability(probabilities, scored.labels)
        filled = table.counts > 0
        solid = table.counts >= MIN_BIN_ROWS
        sparse = filled & ~solid
        width = float(table.edges[1] - table.edges[0])
        for chosen, style, label in (
            (solid, {"alpha": 0.6}, "accuracy per bin"),
            (sparse, _SPARSE, f"bin of under {MIN_BIN_ROWS} rows"),
        ):
            if chosen.any():
                axes.bar(
                    table.edges[:-1][chosen],
                    table.accuracy[chosen],
                    width=width,
                    align="edge",
                    edgecolor="black",
                    label=label,
                    **style,
                )
        for left, accuracy, count in zip(
            table.edges[:-1][filled], table.accuracy[filled], table.counts[filled], strict=True
        ):
            axes.annotate(
                f"{int(count)}",
                (float(left) + width / 2, float(accuracy)),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                fontsize="x-small",
                gid="bin-count",
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
            title=f"{title}\n{name}: ECE {ece:.4f} (numbers: rows per bin)",
            xlim=(0, 1),
            ylim=(0, 1.08),
        )
        axes.legend(loc="upper left", fontsize="small")  # low confidences are mostly empty
    _caption(figure, "reliability")
    return figure


def error_vs_entropy_figure(scored: ClassificationRows, title: str) -> Figure:
    """Share of wrong MC predictions per entropy bin, as unjoined markers with their rows."""
    figure, (axes,) = _figure()
    entropy = scored.predictive_entropy
    centres, rates, counts = _binned(entropy, scored.mc_errors.astype(np.float64))
    axes.plot(centres, rates, marker="o", linestyle="none", label="share wrong per entropy bin")
    for x, y, count in zip(centres, rates, counts, strict=True):
        axes.annotate(
            f"{count}",
            (x, y),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            fontsize="x-small",
            gid="bin-count",
        )
    _fit_x(axes, entropy)
    axes.set(
        xlabel="predictive entropy (nats), bin mean",
        ylabel="share of wrong MC predictions",
        title=f"{title} (numbers: rows per bin)",
    )
    axes.set_ylim(bottom=0.0, top=max(1.05 * max(rates), 0.05))
    axes.legend(loc="upper left", fontsize="small")
    _caption(figure, "error_vs_entropy")
    return figure


def write_plots(report: EvaluationReport, folder: Path) -> list[Path]:
    """Write the report's plots as PNG files into `folder` (created if missing); returns them."""
    folder.mkdir(parents=True, exist_ok=True)
    title = f"{report.model} v{report.version}, {report.n_rows} rows"
    scored = report.scored
    if isinstance(scored, RegressionRows):
        return [
            _save(coverage_figure(scored, title), folder / "coverage.png"),
            _save(error_vs_std_figure(scored, title), folder / "error_vs_std.png"),
        ]
    return [
        _save(reliability_figure(scored, title), folder / "reliability.png"),
        _save(error_vs_entropy_figure(scored, title), folder / "error_vs_entropy.png"),
    ]
