"""The Monte-Carlo dropout forward, shaped for throughput.

What makes it fast (measured on a 2-core CPU; see bench/engine.py):
- all T passes of a chunk run as one stacked forward of (t * rows) rows;
- without input dropout the first affine layer and its activation are the same for every pass,
  so they are computed once for the `rows` and only then expanded to t copies;
- masks are drawn in bulk as 64-bit words split into four 16-bit lanes, each compared with a
  threshold, so the drop probability is quantised to round(p * 65536) / 65536 (0.05 becomes
  0.0500031). The words are SplitMix64 outputs of counters, one stream per (request, layer),
  hashed for all stacked rows and all layers of a chunk at once: about fifteen tensor operations
  however many requests share the batch (0.9 ns a lane against 1.5-1.7 with a torch.Generator
  per request). Few operations matter on a serving worker: each one lets the GIL go and must
  win it back from the event loop; a batch of nine requests measured 28 ms inside the server
  against 11 ms alone, its worker blocked some 26 times a batch;
- the comparison writes straight into a mask of the activations' dtype: a bool mask costs 5x
  more to make and to multiply by;
- the inverted-dropout scale 1/(1-p) is folded into the next layer's weights once, at load.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from service.model import DropoutMLP

__all__ = [
    "LANE_LEVELS",
    "MaskFn",
    "PreparedNetwork",
    "SegmentMasks",
    "cast_network",
    "draw_keep_mask",
    "mc_forward",
    "prepare_network",
    "splitmix64",
    "stream_key",
]

LANE_LEVELS = 1 << 16

# (layer index, shape (passes * rows, width), rate) -> keep mask of that shape: bool, or 0/1 in
# any dtype the activations can be multiplied by
MaskFn = Callable[[int, tuple[int, ...], float], torch.Tensor]


@dataclass(frozen=True)
class PreparedNetwork:
    """Affine layers as (in, out) matrices with dropout scaling folded in, on one device."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    rates: list[float]  # dropout rate in front of each affine layer (input dropout first)
    activation: nn.Module


def prepare_network(network: DropoutMLP, device: torch.device) -> PreparedNetwork:
    """Copy the weights to `device`, transposed, with 1/(1-p) folded in for inverted dropout."""
    config = network.config
    weights, biases = [], []
    for linear, rate in zip(network.linears, config.rates, strict=True):
        weight = linear.weight.detach().to(device=device, dtype=torch.float32).t()
        if config.style == "inverted" and rate > 0:
            weight = weight / (1.0 - rate)
        weights.append(weight.contiguous())
        biases.append(linear.bias.detach().to(device=device, dtype=torch.float32).clone())
    return PreparedNetwork(weights, biases, list(config.rates), network.activation)


def cast_network(net: PreparedNetwork, dtype: torch.dtype) -> PreparedNetwork:
    """The same network with its weights in `dtype` (bf16 for the reduced-precision forward)."""
    return PreparedNetwork(
        [w.to(dtype) for w in net.weights],
        [b.to(dtype) for b in net.biases],
        net.rates,
        net.activation,
    )


def draw_keep_mask(
    shape: tuple[int, ...], rate: float, seed: int, device: torch.device
) -> torch.Tensor:
    """A boolean keep mask with P(keep) = 1 - round(rate * 65536) / 65536, one lane per element:
    the first rows of the stream `SegmentMasks` draws for one row segment seeded `seed`."""
    rows, width = math.prod(shape[:-1]), shape[-1]
    mask = SegmentMasks([(rows, seed)], 1, device, torch.bool)(0, (rows, width), rate)
    return mask.view(shape)


def _threshold(rate: float) -> int:
    # int16 lanes are uniform on [-32768, 32767]; the lowest round(rate * 65536) levels drop.
    return round(rate * LANE_LEVELS) - LANE_LEVELS // 2


_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment: 2**64 / golden ratio, odd
_MIX = ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB))
_LAST_SHIFT = 31


def splitmix64(state: int) -> int:
    """SplitMix64's output function on a 64-bit state (Steele, Lea and Flood 2014); the tensor
    version, `_splitmix64_`, computes the same bits."""
    z = state & _MASK64
    for shift, multiplier in _MIX:
        z = ((z ^ (z >> shift)) * multiplier) & _MASK64
    return z ^ (z >> _LAST_SHIFT)


def _as_int64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


def _splitmix64_(z: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """`splitmix64` in place on int64 words: torch shifts signed words arithmetically, so each
    shift is masked down to the logical shift's bits; products wrap modulo 2**64."""
    for shift, multiplier in _MIX:
        torch.bitwise_right_shift(z, shift, out=scratch)
        z.bitwise_xor_(scratch.bitwise_and_((1 << (64 - shift)) - 1))
        z.mul_(_as_int64(multiplier))
    torch.bitwise_right_shift(z, _LAST_SHIFT, out=scratch)
    return z.bitwise_xor_(scratch.bitwise_and_((1 << (64 - _LAST_SHIFT)) - 1))


def stream_key(seed: int, layer: int) -> int:
    """Where the stream of (seed, layer) starts in SplitMix64's 2**64 cycle: hashed, so distinct
    seeds and layers start far apart."""
    return splitmix64(splitmix64(seed) + (layer + 1) * _GAMMA)


class SegmentMasks:
    """Masks for a stack of row segments (one per request), each with its own seed.

    The lanes of (segment, layer) are a SplitMix64 stream keyed by the segment's seed and the
    layer: word c of the stream is splitmix64(key + c * GAMMA), counted in pass order, then row,
    then unit. So a segment's masks depend only on its seed, not on the other segments stacked
    with it nor on how the passes are chunked: a request gets the same masks alone, batched, or
    chunked differently. All segments' masks come from one counter tensor; given the `widths`
    of the layers with dropout, so do all those layers' masks of a chunk, drawn at its first
    layer (the rest are taken in the same chunk). Masks come as 0/1 in `dtype`, the dtype of
    the activations they multiply.
    """

    def __init__(
        self,
        segments: list[tuple[int, int]],
        layers: int,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        widths: dict[int, int] | None = None,
    ):
        """`segments` are (rows, seed) pairs in stacking order; `layers` affine layers;
        `widths`, optional, the input width of each layer with dropout."""
        self._segments = segments
        self._total = sum(rows for rows, _ in segments)
        self._device = device
        self._dtype = dtype
        self._widths = widths or {}
        self._drawn = [0] * layers  # passes drawn so far, per layer
        self._counters: dict[tuple[tuple[int, int], ...], tuple[torch.Tensor, torch.Tensor]] = {}
        self._pending: dict[int, torch.Tensor] = {}  # lanes drawn for this chunk, not yet taken

    def __call__(self, layer: int, shape: tuple[int, ...], rate: float) -> torch.Tensor:
        passes, width = shape[0] // self._total, shape[1]
        if layer not in self._pending:
            together = self._widths if self._widths.get(layer) == width else {layer: width}
            self._pending = self._draw(passes, together)
        lanes = self._pending.pop(layer)
        mask = torch.empty((passes, self._total, width), dtype=self._dtype, device=self._device)
        torch.ge(lanes, _threshold(rate), out=mask)
        return mask.view(shape)

    def _draw(self, passes: int, widths: dict[int, int]) -> dict[int, torch.Tensor]:
        """(passes, rows, width) int16 lanes for each layer in `widths`, from one hash."""
        done = {self._drawn[layer] for layer in widths}
        if len(done) != 1:
            raise RuntimeError(f"layers {sorted(widths)} were drawn to different passes: {done}")
        start = done.pop()
        for layer in widths:
            self._drawn[layer] = start + passes
        base, step = self._row_counters(tuple(widths.items()))
        device = self._device
        t = torch.arange(start, start + passes, dtype=torch.int64, device=device).view(-1, 1, 1)
        counters = torch.addcmul(base, t, step)  # (passes, rows, words of all layers)
        z = _splitmix64_(counters, torch.empty_like(counters))
        lanes = z.view(torch.int16)  # (passes, rows, 4 x words of all layers)
        drawn, offset = {}, 0
        for layer, width in widths.items():
            drawn[layer] = lanes[..., offset : offset + width]
            offset += 4 * _words(width)
        return drawn

    def _row_counters(
        self, widths: tuple[tuple[int, int], ...]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Int64 tensors of shape (1, rows, words of all layers): each word's stream position in
        pass 0 and its step from one pass to the next (its segment's words per pass), times
        GAMMA and plus its stream's key, modulo 2**64."""
        cached = self._counters.get(widths)
        if cached is not None:
            return cached
        counts = np.array([rows for rows, _ in self._segments], dtype=np.int64)
        rows = counts.astype(np.uint64)
        local = np.arange(self._total, dtype=np.uint64) - np.repeat(np.cumsum(rows) - rows, counts)
        gamma = np.uint64(_GAMMA)
        bases, steps = [], []
        with np.errstate(over="ignore"):  # uint64 arithmetic wraps modulo 2**64, as meant
            for layer, width in widths:
                words = np.uint64(_words(width))
                keys = np.array(
                    [stream_key(seed, layer) for _, seed in self._segments], dtype=np.uint64
                )
                first = np.repeat(keys, counts) + local * words * gamma
                unit = np.arange(_words(width), dtype=np.uint64) * gamma
                bases.append(first[:, None] + unit[None, :])
                steps.append(
                    np.repeat(np.repeat(rows * words * gamma, counts)[:, None], int(words), 1)
                )
        base, step = (
            torch.from_numpy(np.concatenate(parts, axis=1).view(np.int64))
            .unsqueeze(0)
            .to(self._device)
            for parts in (bases, steps)
        )
        self._counters[widths] = (base, step)
        return base, step


def _words(width: int) -> int:
    """64-bit words for a row of `width` lanes: each row starts on a word of its own."""
    return (width + 3) // 4


def mc_forward(net: PreparedNetwork, x: torch.Tensor, passes: int, masks: MaskFn) -> torch.Tensor:
    """`passes` stochastic passes over standardised rows `x`; returns (passes, rows, outputs).

    `masks(layer, shape, rate)` supplies the keep masks (SegmentMasks when serving; tests share
    masks with a reference implementation through it).
    """
    rows = x.shape[0]
    weights, biases, rates = net.weights, net.biases, net.rates
    last = len(weights) - 1
    if rates[0] == 0.0:
        h = torch.addmm(biases[0], x, weights[0])
        if last > 0:
            h = net.activation(h)
        h = h.unsqueeze(0).expand(passes, rows, -1).reshape(passes * rows, -1)
        start = 1
    else:
        h = x.unsqueeze(0).expand(passes, rows, -1).reshape(passes * rows, -1)
        start = 0
    activate = _IN_PLACE.get(type(net.activation), net.activation)
    for index in range(start, last + 1):
        rate = rates[index]
        if rate > 0.0:
            mask = masks(index, tuple(h.shape), rate)
            # In place only on a tensor this loop made: the first masked h can be a view of
            # the caller's `x`, or an expanded view (one row) whose elements share memory.
            h = h * mask if index == start else h.mul_(mask)
        h = torch.addmm(biases[index], h, weights[index])
        if index < last:
            h = activate(h)
    return h.reshape(passes, rows, -1)


# Activations applied in place on the fresh output of addmm: one allocation less per layer.
_IN_PLACE: dict[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]] = {
    nn.ReLU: torch.relu_,
    nn.Tanh: torch.tanh_,
    nn.Sigmoid: torch.sigmoid_,
}
