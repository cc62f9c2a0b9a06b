"""The evaluation plots fit their axes to the data, count the rows of every bin, never join
binned means with lines, and say under the axes how to read them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure

from service.evaluation.classification import ClassificationRows
from service.evaluation.plots import (
    CAPTIONS,
    MIN_BIN_ROWS,
    coverage_figure,
    error_vs_entropy_figure,
    error_vs_std_figure,
    reliability_figure,
)
from service.evaluation.regression import LEVELS, RegressionRows
from service.scoring import reliability


def regression_rows(rows: int = 200) -> RegressionRows:
    rng = np.random.default_rng(0)
    std = rng.uniform(15.7, 18.4, size=(rows, 1))
    mean = rng.normal(40.0, 10.0, size=(rows, 1))
    targets = mean + rng.normal(0.0, 1.0, size=(rows, 1)) * std
    bounds = dict.fromkeys(LEVELS, mean)
    return RegressionRows(targets, mean, mean, std, bounds, bounds, -np.ones((rows, 1)), targets)


def classification_rows(rows: int = 300) -> ClassificationRows:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=rows)
    top = rng.uniform(0.7, 1.0, size=rows)
    probabilities = np.empty((rows, 3))
    probabilities[:] = ((1.0 - top) / 2)[:, None]
    probabilities[np.arange(rows), labels] = top
    probabilities[:2] = [0.5, 0.3, 0.2]  # two rows of low confidence: a sparse bin
    entropy = -(probabilities * np.log(probabilities)).sum(axis=1)
    return ClassificationRows(labels, probabilities, probabilities, entropy, entropy * 0.1)


def joined_lines(figure: Figure) -> list[int]:
    """Point counts of lines drawn through more than two points (the reference lines have two)."""
    return [
        len(line.get_xdata())  # type: ignore[arg-type]
        for axes in figure.axes
        for line in axes.get_lines()
        if line.get_linestyle() not in ("None", "none", "") and len(line.get_xdata()) > 2  # type: ignore[arg-type]
    ]


def test_error_vs_std_fits_the_x_axis_to_the_data() -> None:
    figure = error_vs_std_figure(regression_rows(), "t")
    low, high = figure.axes[0].get_xlim()
    assert 15.0 < low < 15.7
    assert 18.4 < high < 19.0
    assert not joined_lines(figure)


def test_reliability_counts_every_bin_and_marks_sparse_ones() -> None:
    scored = classification_rows()
    figure = reliability_figure(scored, "t")
    table = reliability(scored.deterministic, scored.labels)
    expected = sorted(int(count) for count in table.counts if count > 0)
    axes = figure.axes[0]
    counts = sorted(int(text.get_text()) for text in axes.texts if text.get_gid() == "bin-count")
    assert counts == expected
    assert any(0 < count < MIN_BIN_ROWS for count in expected)
    hatched = [patch for patch in axes.patches if patch.get_hatch()]
    solid = [patch for patch in axes.patches if not patch.get_hatch()]
    assert len(hatched) == sum(0 < c < MIN_BIN_ROWS for c in expected)
    assert len(solid) == sum(c >= MIN_BIN_ROWS for c in expected)
    assert all((patch.get_alpha() or 1.0) < 0.3 for patch in hatched)


@pytest.mark.parametrize("rows", [4, 300])
def test_error_vs_entropy_draws_markers_with_their_rows(rows: int) -> None:
    scored = classification_rows(rows)
    figure = error_vs_entropy_figure(scored, "t")
    assert not joined_lines(figure)
    axes = figure.axes[0]
    counts = [int(text.get_text()) for text in axes.texts if text.get_gid() == "bin-count"]
    assert sum(counts) == rows
    assert min(counts) >= min(rows, 20)
    low, high = axes.get_xlim()
    assert 0.0 <= low <= float(scored.predictive_entropy.min())
    assert high >= float(scored.predictive_entropy.max())


@pytest.mark.parametrize(
    ("plot", "draw"),
    [
        ("coverage", lambda: coverage_figure(regression_rows(), "t")),
        ("error_vs_std", lambda: error_vs_std_figure(regression_rows(), "t")),
        ("reliability", lambda: reliability_figure(classification_rows(), "t")),
        ("error_vs_entropy", lambda: error_vs_entropy_figure(classification_rows(), "t")),
    ],
)
def test_every_plot_says_how_to_read_it_below_its_axes(
    plot: str, draw: Callable[[], Figure]
) -> None:
    figure = draw()
    captions = [text for text in figure.texts if text.get_gid() == "caption"]
    assert len(captions) == 1
    caption = captions[0]
    assert " ".join(caption.get_text().split()) == CAPTIONS[plot]  # wrapped, not changed
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    figure.draw(renderer)  # the constrained layout places the caption and the axes
    box = caption.get_window_extent(renderer)
    assert box.width <= figure.bbox.width  # wrapped to fit the figure
    for axes in figure.axes:
        assert box.y1 <= axes.get_tightbbox(renderer).y0, "the caption overlaps the axes"
