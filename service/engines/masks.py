"""Dropout masks for the stacked Monte-Carlo forward: one reproducible stream per request.

Masks are 64-bit words split into four 16-bit lanes, each compared with a threshold, so the drop
probability is quantised to round(p * 65536) / 65536 (0.05 becomes 0.0500031). The words are
SplitMix64 outputs of counters, one stream per (request, layer), hashed for all stacked rows and
all layers of a chunk at once: a constant number of array operations however many requests
share the batch (0.6-0.9 ns a lane, against 1.5-1.7 with a torch.Generator per request). Few
operations matter on a serving worker: each lets the GIL go and must win it back from the event
loop; a batch of nine requests measured 28 ms inside the server against 11 ms alone, its worker
blocked some 26 times a batch when every request drew its own. The CPU hashes in NumPy (logical
uint64 shifts; a third of torch's cost per small operation), other devices in torch. The
comparison writes straight into a 0/1 mask of the activations' dtype: a bool mask costs 5x more
to make and to multiply by.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch

__all__ = ["LANE_LEVELS", "SegmentMasks", "draw_keep_mask", "splitmix64", "stream_key"]

LANE_LEVELS = 1 << 16


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
_MIX_U64 = tuple((np.uint64(shift), np.uint64(multiplier)) for shift, multiplier in _MIX)
_LAST_SHIFT_U64 = np.uint64(_LAST_SHIFT)


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
        self._counters: dict[tuple[tuple[int, int], ...], _Counters] = {}
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
        counters = self._row_counters(tuple(widths.items()))
        if self._device.type == "cpu":
            z = torch.from_numpy(_hash_numpy(counters.base, counters.step, start, passes))
        else:
            z = _hash_torch(*counters.on(self._device), start, passes)
        lanes = z.view(torch.int16)  # (passes, rows, 4 x words of all layers)
        drawn, offset = {}, 0
        for layer, width in widths.items():
            drawn[layer] = lanes[..., offset : offset + width]
            offset += 4 * _words(width)
        return drawn

    def _row_counters(self, widths: tuple[tuple[int, int], ...]) -> _Counters:
        cached = self._counters.get(widths)
        if cached is None:
            counts = tuple(rows for rows, _ in self._segments)
            segment, offsets, step = _layout(counts, tuple(_words(w) for _, w in widths))
            bases = []
            for (layer, _), offset in zip(widths, offsets, strict=True):
                keys = [stream_key(seed, layer) for _, seed in self._segments]
                if len(keys) == 1:
                    bases.append(offset + np.uint64(keys[0]))
                else:
                    bases.append(offset + np.array(keys, dtype=np.uint64)[segment][:, None])
            base = bases[0] if len(bases) == 1 else np.concatenate(bases, axis=1)
            cached = self._counters[widths] = _Counters(base[None], step[None])
        return cached


@functools.lru_cache(maxsize=64)
def _layout(
    counts: tuple[int, ...], words: tuple[int, ...]
) -> tuple[npt.NDArray[np.intp], list[npt.NDArray[np.uint64]], npt.NDArray[np.uint64]]:
    """What the counters of segments of `counts` rows share whatever their seeds: each stacked
    row's segment; per layer of `words` words a row, each word's position in its stream in
    pass 0 (row-major within the segment), times GAMMA; and the step from one pass to the next
    of all layers' words (the segment's words per pass, times GAMMA). Modulo 2**64: uint64
    array arithmetic wraps silently, as meant (Python ints are reduced first)."""
    segment = np.repeat(np.arange(len(counts)), counts)
    starts = np.array([sum(counts[:i]) for i in range(len(counts))], dtype=np.uint64)
    local = np.arange(sum(counts), dtype=np.uint64) - starts[segment]
    rows = np.array(counts, dtype=np.uint64)[segment]
    offsets, steps = [], []
    for n in words:
        stride = np.uint64(n * _GAMMA & _MASK64)
        unit = np.array([j * _GAMMA & _MASK64 for j in range(n)], dtype=np.uint64)
        offsets.append(local[:, None] * stride + unit)
        steps.append(np.repeat((rows * stride)[:, None], n, axis=1))
    step = np.concatenate(steps, axis=1)
    for shared in (segment, step, *offsets):
        shared.flags.writeable = False  # cached: every later request reads these very arrays
    return segment, offsets, step


@dataclass
class _Counters:
    """Per stacked row and word of all drawn layers, as uint64 of shape (1, rows, words): the
    word's stream position in pass 0 and its step from one pass to the next (its segment's
    words per pass), times GAMMA and plus its stream's key, modulo 2**64."""

    base: npt.NDArray[np.uint64]
    step: npt.NDArray[np.uint64]
    _device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Both as int64 tensors on `device` (the same bits)."""
        if device not in self._device:
            self._device[device] = (
                torch.tensor(self.base.view(np.int64), device=device),
                torch.tensor(self.step.view(np.int64), device=device),
            )
        return self._device[device]


def _hash_torch(base: torch.Tensor, step: torch.Tensor, start: int, passes: int) -> torch.Tensor:
    """`_hash_numpy` on int64 tensors, for the GPU: one kernel per operation over the chunk."""
    t = torch.arange(start, start + passes, dtype=torch.int64, device=base.device)
    words = torch.addcmul(base, t.view(-1, 1, 1), step)
    return _splitmix64_(words, torch.empty_like(words))


# Words hashed at a time on the CPU: the block and its scratch stay in the core's L2 cache.
_BLOCK_WORDS = 32_768


def _hash_numpy(
    base: npt.NDArray[np.uint64], step: npt.NDArray[np.uint64], start: int, passes: int
) -> npt.NDArray[np.uint64]:
    """splitmix64(base + t * step) for passes t = start..start+passes-1, shape (passes, rows,
    words). NumPy's unsigned shifts are logical and its ops cost a third of torch's on small
    arrays, so the CPU hashes here, a block of passes at a time."""
    per_pass = base.shape[1] * base.shape[2]
    z = np.empty((passes, base.shape[1], base.shape[2]), dtype=np.uint64)
    scratch = np.empty((max(1, min(passes, _BLOCK_WORDS // per_pass)), *base.shape[1:]), np.uint64)
    t = np.arange(start, start + passes, dtype=np.uint64).reshape(-1, 1, 1)
    for lo in range(0, passes, scratch.shape[0]):
        block = z[lo : lo + scratch.shape[0]]
        s = scratch[: block.shape[0]]
        np.multiply(t[lo : lo + block.shape[0]], step, out=block)  # arrays: wraps silently
        block += base
        for shift, multiplier in _MIX_U64:
            np.right_shift(block, shift, out=s)
            block ^= s
            block *= multiplier
        np.right_shift(block, _LAST_SHIFT_U64, out=s)
        block ^= s
    return z


def _words(width: int) -> int:
    """64-bit words for a row of `width` lanes: each row starts on a word of its own."""
    return (width + 3) // 4
