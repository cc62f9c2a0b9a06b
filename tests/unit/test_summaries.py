"""Per-request summaries of a batch: grouped by interval mass, errors kept to their request."""

from __future__ import annotations

import pytest
import torch

from service.dataplane import summaries
from service.dataplane.summaries import summarise_requests
from service.engines import summarise_classification, summarise_regression
from service.errors import InvalidInputError

TAU = torch.tensor([4.0, 0.5], dtype=torch.float64)


def test_each_request_gets_its_own_rows_summarised_at_its_own_level() -> None:
    draws = torch.randn(300, 6, 2, generator=torch.Generator().manual_seed(0))
    draws[:, 3, 1] = float("inf")  # the third request's only row overflowed
    sizes, levels = [2, 1, 1, 2], [0.9, 0.5, 0.9, 0.9]
    results = summarise_requests(draws, sizes, levels, TAU)
    assert isinstance(results[2], InvalidInputError)
    assert "instances[0]" in str(results[2])
    starts = [0, 2, 3, 4]
    for index in (0, 1, 3):
        summary, own = results[index]
        rows = draws[:, starts[index] : starts[index] + sizes[index]]
        assert torch.equal(own, rows)
        alone = summarise_regression(rows, TAU, levels[index])
        for name, value in vars(alone).items():
            assert torch.equal(getattr(summary, name), value), name


def test_classification_ignores_levels() -> None:
    logits = torch.randn(200, 5, 3, generator=torch.Generator().manual_seed(1))
    draws = torch.softmax(logits, dim=-1)
    results = summarise_requests(draws, [3, 2], [0.9, 0.5], None)
    for (summary, own), start in zip(results, (0, 3), strict=True):
        alone = summarise_classification(own)
        assert torch.equal(own, draws[:, start : start + own.shape[1]])
        for name, value in vars(alone).items():
            assert torch.equal(getattr(summary, name), value), name


@pytest.mark.parametrize("sizes", [[1], [4]])
def test_a_single_request_is_its_own_summary(sizes: list[int]) -> None:
    draws = torch.randn(50, sizes[0], 2, dtype=torch.float64)
    ((summary, own),) = summarise_requests(draws, sizes, [0.95], TAU)
    torch.testing.assert_close(summary.mean, draws.mean(dim=0))
    assert own is not None


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_rows_summarised_in_blocks_equal_the_whole(
    monkeypatch: pytest.MonkeyPatch, task: str
) -> None:
    """Large requests are summarised a few rows at a time to bound memory; a row's numbers do
    not depend on its neighbours, so the answer is the same to the bit."""
    generator = torch.Generator().manual_seed(2)
    draws = torch.randn(40, 7, 2, generator=generator)
    if task == "classification":
        draws = torch.softmax(draws, dim=-1)
    tau = TAU if task == "regression" else None
    whole = summarise_requests(draws, [5, 2], [0.9, 0.9], tau)
    monkeypatch.setattr(summaries, "_BLOCK_ELEMENTS", 40 * 2 * 3)  # three rows a block
    blocked = summarise_requests(draws, [5, 2], [0.9, 0.9], tau)
    for (one, _), (other, _) in zip(whole, blocked, strict=True):
        for name, value in vars(one).items():
            assert torch.equal(getattr(other, name), value), name
