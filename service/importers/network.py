"""What an importer reads out of a file: affine layers, one activation, dropout, an input prefix.

Both readers (ONNX graphs, PyTorch state dicts) produce an `ImportedNetwork`; the bundle builder
knows nothing else about where it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from service.errors import ModelImportError
from service.model.mlp import Activation

__all__ = ["Head", "ImportedNetwork", "Reference", "dropout_rates"]

Float64 = npt.NDArray[np.float64]
# The op after the last affine layer: none (regression or raw logits), Softmax or LogSoftmax.
Head = Literal["softmax", "log_softmax"]
# The original file run as its own framework runs it: raw float64 rows in, its output out.
Reference = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class ImportedNetwork:
    """x -> x * input_scale + input_shift -> affine -> act -> ... -> affine [-> head].

    `weights[k]` has shape (out, in); `rates[k]` is the dropout rate in front of affine layer k
    (input dropout first), or `rates` is None when the file holds no dropout at all (a graph
    exported in eval mode, a state dict).
    """

    weights: list[Float64]
    biases: list[Float64]
    activation: Activation
    rates: tuple[float, ...] | None
    head: Head | None
    input_scale: Float64
    input_shift: Float64
    # ONNX only: the position of each affine layer's Gemm or MatMul, where the reference graph
    # inserts the classic style's weight scaling.
    affine_nodes: tuple[int, ...] = ()

    @property
    def n_features(self) -> int:
        return int(self.weights[0].shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.weights[-1].shape[0])

    @property
    def hidden(self) -> tuple[int, ...]:
        return tuple(int(weight.shape[0]) for weight in self.weights[:-1])


def dropout_rates(
    network: ImportedNetwork, hidden: tuple[float, ...] | None, input_rate: float | None
) -> tuple[float, tuple[float, ...]]:
    """(input dropout, hidden dropout) from the file, or else from the command line.

    A file with Dropout nodes is the authority, so flags that would contradict it are refused
    rather than silently ignored; a file without any needs the flags.

    Raises:
        ModelImportError: neither source gives rates, both do, or the count is wrong.
    """
    layers = len(network.hidden)
    if network.rates is not None:
        if hidden is not None or input_rate is not None:
            hidden_text = ", ".join(f"{rate:g}" for rate in network.rates[1:])
            raise ModelImportError(
                "the file holds Dropout nodes, which give the dropout rates (input "
                f"{network.rates[0]:g}, hidden {hidden_text}); leave out --dropout and "
                "--input-dropout"
            )
        return network.rates[0], network.rates[1:]
    if hidden is None:
        raise ModelImportError(
            "the file holds no dropout rates (a graph exported in eval mode drops its Dropout "
            "nodes, and a state dict never has them), and MC dropout cannot run without them; "
            f"pass --dropout with one rate per hidden layer ({layers} here, e.g. --dropout "
            f"{','.join(['0.1'] * layers) or 'none'}) and --input-dropout if the inputs were "
            "dropped too"
        )
    if len(hidden) == 1 and layers > 1:
        hidden = hidden * layers  # one rate for every layer, as `dropserve train` reads it
    if len(hidden) != layers:
        raise ModelImportError(
            f"--dropout gives {len(hidden)} rate(s), {', '.join(f'{r:g}' for r in hidden)}, but "
            f"the network has {layers} hidden layer(s) of widths "
            f"{', '.join(str(w) for w in network.hidden)}: give one rate per hidden layer"
        )
    for rate in (*hidden, input_rate or 0.0):
        if not 0.0 <= rate < 1.0:
            raise ModelImportError(f"dropout rates must lie in [0, 1), got {rate:g}")
    return input_rate or 0.0, hidden
