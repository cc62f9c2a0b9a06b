"""The fast MC kernel equals the textbook definition on shared masks, and its masks are right."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from service.engines.masks import (
    LANE_LEVELS,
    SegmentMasks,
    _hash_numpy,
    _hash_torch,
    draw_keep_mask,
    splitmix64,
    stream_key,
)
from service.engines.mc_kernel import prepare_network
from service.model import DropoutMLP
from service.model.mc import AffineLayers, mc_forward
from service.model.mlp import DropoutStyle
from tests.factories import make_config, make_network

CPU = torch.device("cpu")


def reference(
    network: DropoutMLP, x: torch.Tensor, passes: int, masks: list[torch.Tensor]
) -> torch.Tensor:
    """T passes, one at a time, dropout applied as defined: mask, then 1/(1-p) if inverted."""
    config = network.config
    layers = network.linears
    out = []
    per_pass = [[m.reshape(passes, x.shape[0], -1)[t] for m in masks] for t in range(passes)]
    for t in range(passes):
        h = x
        pass_masks = iter(per_pass[t])
        for index, (layer, rate) in enumerate(zip(layers, config.rates, strict=True)):
            if rate > 0:
                h = h * next(pass_masks)
                if config.style == "inverted":
                    h = h / (1 - rate)
            h = layer(h)
            if index < len(layers) - 1:
                h = network.activation(h)
        out.append(h)
    return torch.stack(out)


@pytest.mark.parametrize("style", ["inverted", "classic"])
@pytest.mark.parametrize("input_dropout", [0.0, 0.2])
@pytest.mark.parametrize(("rows", "passes"), [(5, 7), (1, 7), (1, 1), (4, 1)])
def test_kernel_equals_the_definition_on_the_same_masks(
    style: DropoutStyle, input_dropout: float, rows: int, passes: int
) -> None:
    """Also for one row or one pass, where the stacked activations start as views (the kernel
    works in place only on tensors it made, and leaves `x` untouched)."""
    config = make_config(
        style=style, hidden=(16, 8), dropout=(0.3, 0.1), input_dropout=input_dropout, n_outputs=2
    )
    network = make_network(config, seed=3)
    x = torch.randn(rows, config.n_features, generator=torch.Generator().manual_seed(1))
    original = x.clone()
    masks: list[torch.Tensor] = []
    source = torch.Generator().manual_seed(2)

    def record(layer: int, shape: tuple[int, ...], rate: float) -> torch.Tensor:
        mask = torch.rand(shape, generator=source) >= rate
        masks.append(mask)
        return mask

    with torch.inference_mode():
        fast = mc_forward(prepare_network(network, CPU), x, passes, record)
        slow = reference(network, x, passes, masks)
    assert fast.shape == (passes, rows, 2)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    assert torch.equal(x, original)


def test_keep_rate_is_the_quantised_rate() -> None:
    rate = 0.05
    mask = draw_keep_mask((1001, 997), rate, 0, CPU)  # rows not a multiple of 4 lanes
    assert mask.shape == (1001, 997)
    assert mask.dtype == torch.bool
    keep = 1 - round(rate * LANE_LEVELS) / LANE_LEVELS
    n = mask.numel()
    z = (mask.float().mean().item() - keep) / math.sqrt(keep * (1 - keep) / n)
    assert abs(z) < 5


@pytest.mark.parametrize("rate", [0.0, 1 / LANE_LEVELS, 0.5, 0.9])
def test_extreme_and_middle_rates(rate: float) -> None:
    mask = draw_keep_mask((400, 400), rate, 1, CPU)
    keep = 1 - round(rate * LANE_LEVELS) / LANE_LEVELS
    if rate == 0.0:
        assert bool(mask.all())
    else:
        n = mask.numel()
        z = (mask.float().mean().item() - keep) / math.sqrt(keep * (1 - keep) / n)
        assert abs(z) < 5


def test_masks_differ_between_draws_and_lanes_are_independent() -> None:
    first = draw_keep_mask((256, 64), 0.5, 5, CPU)
    second = draw_keep_mask((256, 64), 0.5, 6, CPU)
    assert not torch.equal(first, second)
    # Neighbouring lanes come from the same 64-bit word: they must still be uncorrelated.
    a, b = first.flatten()[0::2].float(), first.flatten()[1::2].float()
    correlation = torch.corrcoef(torch.stack([a, b]))[0, 1].item()
    assert abs(correlation) < 5 / math.sqrt(a.numel())


def test_mask_lanes_are_splitmix64_of_the_stream_counters_bit_for_bit() -> None:
    """The tensor hash (signed int64 shifts masked to logical ones, wrapping products) equals
    the integer definition, for a segment in the middle of a stack and a second chunk."""
    segments = [(2, 11), (3, 2**31 - 1), (1, 0)]
    width, words = 10, 3  # 10 lanes a row take 3 words; the last two lanes are unused
    masks = SegmentMasks(segments, 2, CPU, torch.float32)
    masks(1, (4 * 6, width), 0.5)  # a first chunk of 4 passes advances the counters
    rate = 0.3
    drawn = masks(1, (5 * 6, width), rate).view(5, 6, width)
    key = stream_key(2**31 - 1, 1)
    threshold = round(rate * LANE_LEVELS)
    for t in range(5):
        for r in range(3):
            for u in range(width):
                counter = ((4 + t) * 3 + r) * words + u // 4
                word = splitmix64(key + counter * 0x9E3779B97F4A7C15)
                lane = (word >> (16 * (u % 4))) & 0xFFFF  # little-endian lanes
                expected = float(lane ^ 0x8000 >= threshold)  # int16 order: flip the sign bit
                assert drawn[t, 2 + r, u].item() == expected, (t, r, u)


def test_the_gpu_hash_in_torch_equals_the_cpu_hash_in_numpy() -> None:
    """The CPU hashes in NumPy (logical shifts on uint64), other devices in torch (int64,
    shifts masked): run here on the CPU, the torch version must give the same words."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**64 - 1, size=(1, 3, 70), dtype=np.uint64, endpoint=True)
    step = rng.integers(0, 2**64 - 1, size=(1, 3, 70), dtype=np.uint64, endpoint=True)
    expected = _hash_numpy(base, step, start=5, passes=400)  # several blocks of passes
    as_tensor = [torch.from_numpy(a.view(np.int64)) for a in (base, step)]
    got = _hash_torch(*as_tensor, start=5, passes=400)
    assert np.array_equal(got.numpy(), expected.view(np.int64))
    # And the first word is the integer definition.
    assert int(expected[0, 0, 0]) == splitmix64(int(base[0, 0, 0]) + 5 * int(step[0, 0, 0]))


def test_neighbouring_seeds_passes_and_rows_draw_uncorrelated_masks() -> None:
    """Seeds 0, 1, 2 (the counter-based streams must not overlap or echo), each row against the
    next, and each pass against the next."""
    masks = SegmentMasks([(50, 0), (50, 1), (50, 2)], 1, CPU)(0, (400 * 150, 64), 0.5)
    masks = masks.view(400, 150, 64)
    bound = 5 / math.sqrt(400 * 50 * 64)
    pairs = {
        "seed 0 against seed 1": (masks[:, :50], masks[:, 50:100]),
        "seed 1 against seed 2": (masks[:, 50:100], masks[:, 100:]),
        "row against the next": (masks[:, 0:50:2], masks[:, 1:50:2]),
        "pass against the next": (masks[0::2, :50], masks[1::2, :50]),
    }
    for name, (a, b) in pairs.items():
        correlation = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()
        assert abs(correlation) < bound * math.sqrt(50 * 400 / a.shape[0] / a.shape[1]), name


@pytest.mark.parametrize("style", ["inverted", "classic"])
def test_kernel_statistics_match_the_model_reference(style: DropoutStyle) -> None:
    config = make_config(style=style, hidden=(32, 32), dropout=(0.2, 0.2), input_dropout=0.1)
    network = make_network(config, seed=4)
    x = torch.randn(3, config.n_features, generator=torch.Generator().manual_seed(0))
    passes = 20_000
    with torch.inference_mode():
        fast = mc_forward(prepare_network(network, CPU), x, passes, SegmentMasks([(3, 1)], 3, CPU))
        slow = network.mc_forward(x, passes, torch.Generator().manual_seed(2))
    for out in (fast, slow):
        assert out.shape == (passes, 3, 1)
    se = torch.sqrt(fast.var(dim=0) / passes + slow.var(dim=0) / passes)
    assert bool(((fast.mean(dim=0) - slow.mean(dim=0)).abs() < 5 * se).all())
    ratio = fast.var(dim=0) / slow.var(dim=0)
    assert bool(((ratio - 1).abs() < 0.1).all())


def test_no_dropout_means_no_variance() -> None:
    config = make_config(hidden=(8,), dropout=(0.0,), input_dropout=0.0)
    network = make_network(config, seed=0)
    x = torch.randn(4, config.n_features)
    out = mc_forward(prepare_network(network, CPU), x, 50, SegmentMasks([(4, 0)], 2, CPU))
    assert float(out.var(dim=0).max()) == 0.0


def test_a_segment_gets_the_same_masks_alone_or_stacked_and_in_any_chunking() -> None:
    config = make_config(hidden=(16, 16), dropout=(0.2, 0.3), input_dropout=0.1)
    prepared = prepare_network(make_network(config, seed=1), CPU)
    rows = torch.randn(5, config.n_features, generator=torch.Generator().manual_seed(3))
    alone = mc_forward(prepared, rows[2:4], 12, SegmentMasks([(2, 77)], 3, CPU))
    stacked_masks = SegmentMasks([(2, 5), (2, 77), (1, 9)], 3, CPU)
    stacked = mc_forward(prepared, torch.cat([rows[:2], rows[2:4], rows[4:]]), 12, stacked_masks)
    torch.testing.assert_close(stacked[:, 2:4], alone, rtol=1e-6, atol=1e-6)
    chunked_masks = SegmentMasks([(2, 77)], 3, CPU)
    chunks = [mc_forward(prepared, rows[2:4], n, chunked_masks) for n in (5, 4, 3)]
    torch.testing.assert_close(torch.cat(chunks), alone, rtol=1e-6, atol=1e-6)
    other = mc_forward(prepared, rows[2:4], 12, SegmentMasks([(2, 78)], 3, CPU))
    assert not torch.allclose(other, alone)


def test_masks_drawn_for_all_layers_at_once_equal_those_drawn_layer_by_layer() -> None:
    """The engine passes the widths, so a chunk's layers share one hash; the streams, and hence
    the masks, are those of the layer-by-layer draw, in every chunk."""
    config = make_config(hidden=(16, 9), dropout=(0.2, 0.3), input_dropout=0.1)
    prepared = prepare_network(make_network(config, seed=1), CPU)
    widths = {
        layer: weight.shape[0]
        for layer, (weight, rate) in enumerate(zip(prepared.weights, prepared.rates, strict=True))
        if rate > 0
    }
    assert len(widths) == 3
    rows = torch.randn(4, config.n_features, generator=torch.Generator().manual_seed(3))
    segments = [(1, 5), (3, 6)]
    apart = SegmentMasks(segments, 3, CPU)
    together = SegmentMasks(segments, 3, CPU, widths=widths)
    for passes in (5, 7):
        torch.testing.assert_close(
            mc_forward(prepared, rows, passes, together),
            mc_forward(prepared, rows, passes, apart),
            rtol=0,
            atol=0,
        )


@pytest.mark.parametrize("input_dropout", [0.0, 0.2])
def test_a_grid_of_networks_equals_each_network_alone_on_the_same_masks(
    input_dropout: float,
) -> None:
    """The grid variant (a leading model dimension, `torch.baddbmm`) keeps each model's rows,
    passes and masks apart and in the order the one-network forward has them."""
    configs = [
        make_config(hidden=(16, 8), dropout=(rate, 0.1), input_dropout=input_dropout)
        for rate in (0.1, 0.3, 0.5)
    ]
    prepared = [prepare_network(make_network(c, seed=s), CPU) for s, c in enumerate(configs)]
    grid = AffineLayers(
        [torch.stack(layer) for layer in zip(*(p.weights for p in prepared), strict=True)],
        [torch.stack(layer)[:, None] for layer in zip(*(p.biases for p in prepared), strict=True)],
        [max(rates) for rates in zip(*(p.rates for p in prepared), strict=True)],
        prepared[0].activation,
    )
    x = torch.randn(3, 4, configs[0].n_features, generator=torch.Generator().manual_seed(1))
    source = torch.Generator().manual_seed(2)
    drawn: dict[int, torch.Tensor] = {}

    def record(layer: int, shape: tuple[int, ...], rate: float) -> torch.Tensor:
        drawn[layer] = torch.rand(shape, generator=source) >= rate
        return drawn[layer]

    with torch.inference_mode():
        together = mc_forward(grid, x, 5, record)
        assert together.shape == (3, 5, 4, 1)
        for m, network in enumerate(prepared):

            def shared(layer: int, shape: tuple[int, ...], rate: float, m: int = m) -> torch.Tensor:
                return drawn[layer][m]

            alone = mc_forward(network, x[m], 5, shared)
            torch.testing.assert_close(together[m], alone, rtol=1e-5, atol=1e-6)
