"""The CUDA-graph path's logic, run on the CPU with a capture that re-runs the forward.

What a real graph adds (fixed addresses, one launch) cannot be tested without a GPU; the last
test does that where CUDA exists. Everything around it is tested here: rows padded to a bucket,
masks from the request's own streams copied into the static buffers, only the real
rows read back, one capture per (bucket, passes), and fallbacks for work too big for a graph.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from service.bundle import load_bundle
from service.engines import MCDropoutEngine
from service.engines.cuda_graphs import GraphCache, cuda_capture
from service.engines.masks import SegmentMasks
from service.engines.mc_kernel import prepare_network
from service.model.mc import mc_forward
from tests.factories import make_bundle, make_model, raw_features

CPU = torch.device("cpu")


class EagerGraph:
    """Stands in for torch.cuda.CUDAGraph: replay() re-runs the forward into the same output."""

    def __init__(self, forward: Callable[[], torch.Tensor], out: torch.Tensor) -> None:
        self.forward = forward
        self.out = out
        self.replays = 0

    def replay(self) -> None:
        self.out.copy_(self.forward())
        self.replays += 1


def eager_capture(forward: Callable[[], torch.Tensor]) -> tuple[EagerGraph, torch.Tensor]:
    out = forward()
    return EagerGraph(forward, out), out


@pytest.mark.parametrize("input_dropout", [0.0, 0.2])
@pytest.mark.parametrize("rows", [1, 3, 4, 5, 17])
def test_replay_equals_the_eager_forward_on_the_same_seeds(input_dropout: float, rows: int) -> None:
    network, _ = make_model(4, hidden=(32, 16), dropout=(0.1, 0.3), input_dropout=input_dropout)
    prepared = prepare_network(network, CPU)
    cache = GraphCache(prepared, eager_capture)
    x = torch.randn(rows, network.config.n_features, generator=torch.Generator().manual_seed(rows))
    passes, segments = 50, [(rows, 11)]
    replayed = cache.run(x, passes, SegmentMasks(segments, len(prepared.weights), CPU))
    eager = mc_forward(prepared, x, passes, SegmentMasks(segments, len(prepared.weights), CPU))
    assert replayed is not None
    assert replayed.shape == (passes, rows, 1)
    # Padding changes the matrix shapes, so the BLAS may round differently, never more.
    torch.testing.assert_close(replayed, eager, rtol=1e-5, atol=1e-5)


def test_padded_rows_never_reach_the_answer_and_graphs_are_reused() -> None:
    network, _ = make_model(5, hidden=(16,), dropout=(0.2,))
    prepared = prepare_network(network, CPU)
    cache = GraphCache(prepared, eager_capture)
    layers = len(prepared.weights)
    big = torch.randn(4, network.config.n_features)
    cache.run(big * 100, 20, SegmentMasks([(4, 1)], layers, CPU))  # leaves stale padded rows
    small = big[:3]
    again = cache.run(small, 20, SegmentMasks([(3, 2)], layers, CPU))
    eager = mc_forward(prepared, small, 20, SegmentMasks([(3, 2)], layers, CPU))
    assert again is not None
    torch.testing.assert_close(again, eager, rtol=1e-5, atol=1e-5)
    assert cache.captures == 1  # 3 and 4 rows share the bucket of 4
    cache.run(big[:1], 20, SegmentMasks([(1, 3)], layers, CPU))
    cache.run(big[:1], 21, SegmentMasks([(1, 3)], layers, CPU))
    assert cache.captures == 3  # new bucket, then new passes


def test_work_too_big_for_a_graph_is_left_to_the_eager_path() -> None:
    network, _ = make_model(6, hidden=(64,), dropout=(0.1,))
    prepared = prepare_network(network, CPU)
    cache = GraphCache(prepared, eager_capture, max_rows=8, max_elements=64 * 8 * 100)
    masks = SegmentMasks([(9, 0)], len(prepared.weights), CPU)
    assert cache.run(torch.randn(9, 3), 10, masks) is None  # more rows than max_rows
    assert cache.bucket(8, 100) == 8
    assert cache.bucket(8, 101) is None  # passes x bucket x widest beyond max_elements
    assert cache.captures == 0


def test_least_recently_used_graphs_are_dropped() -> None:
    network, _ = make_model(7)
    prepared = prepare_network(network, CPU)
    cache = GraphCache(prepared, eager_capture, size=2)
    x = torch.randn(1, network.config.n_features)
    for passes in (5, 6, 5, 7, 5):
        cache.run(x, passes, SegmentMasks([(1, 0)], len(prepared.weights), CPU))
    assert cache.captures == 3  # 5 stayed in use; 6 was dropped when 7 came
    assert sorted(key[1] for key in cache._entries) == [5, 7]


def test_engine_with_graphs_answers_as_without(tmp_path: Path) -> None:
    path = make_bundle(tmp_path, name="g", seed=8, hidden=(32,), dropout=(0.2,))
    bundle = load_bundle(path)
    plain = MCDropoutEngine(bundle, CPU, 1 << 20)
    graphed = MCDropoutEngine(bundle, CPU, 1 << 20, graph_capture=eager_capture)
    plain.load()
    graphed.load()
    features = raw_features(bundle.manifest.standardizer(), rows=5)
    for samples in (10, 100):
        torch.testing.assert_close(
            graphed.sample(features, samples, seed=4),
            plain.sample(features, samples, seed=4),
            rtol=1e-5,
            atol=1e-4,
        )
    tiny_chunks = MCDropoutEngine(bundle, CPU, 32 * 5, graph_capture=eager_capture)
    tiny_chunks.load()
    # Several chunks: no graph, the same passes.
    torch.testing.assert_close(
        tiny_chunks.sample(features, 10, seed=4), plain.sample(features, 10, seed=4)
    )
    assert graphed._graphs["fp32"].captures == 2
    assert "fp32" not in tiny_chunks._graphs or tiny_chunks._graphs["fp32"].captures == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_real_cuda_graphs_match_the_eager_forward() -> None:  # pragma: no cover - GPU only
    cuda = torch.device("cuda")
    network, _ = make_model(9, hidden=(256, 256), dropout=(0.1, 0.1))
    prepared = prepare_network(network, cuda)
    cache = GraphCache(prepared, cuda_capture)
    layers = len(prepared.weights)
    for rows in (1, 3, 8):
        x = torch.randn(rows, network.config.n_features, device=cuda)
        replayed = cache.run(x, 100, SegmentMasks([(rows, rows)], layers, cuda))
        eager = mc_forward(prepared, x, 100, SegmentMasks([(rows, rows)], layers, cuda))
        assert replayed is not None
        torch.testing.assert_close(replayed, eager, rtol=1e-4, atol=1e-4)
    assert cache.captures == 3
