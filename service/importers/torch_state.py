"""Read the state dict of an `nn.Sequential` MLP: safetensors, or `torch.save` without pickles.

Layer sizes come from the weight shapes; the activation and dropout come from the command line,
since a state dict holds neither. The order of the layers is the order of the integer in each key
(`0.weight`, `3.weight`, ... in an `nn.Sequential`, also under a prefix such as `net.`).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from torch import nn

from service.errors import ModelImportError
from service.importers.network import ImportedNetwork, Reference
from service.model.mlp import ACTIVATIONS, Activation

__all__ = ["load_state_dict", "read_state_dict", "torch_reference"]

_KEY = re.compile(r"^(?P<prefix>(?:.*\.)?)(?P<layer>\d+)\.(?P<kind>weight|bias)$")
_SAFETENSORS_SUFFIXES = {".safetensors", ".st"}


def load_state_dict(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file or of a `torch.save` file, never running a pickle.

    Raises:
        ModelImportError: the file is neither, or its pickle holds more than tensors.
    """
    if path.suffix in _SAFETENSORS_SUFFIXES:
        try:
            return dict(load_safetensors(data))
        except SafetensorError as exc:
            raise ModelImportError(f"{path.name} is not a safetensors file: {exc}") from exc
    try:
        # weights_only=True: a pickle may run any code when loaded; this loader only builds
        # tensors and plain containers, and refuses everything else.
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise ModelImportError(
            f"{path.name}: torch.load(weights_only=True) refuses it ({first_line}); dropserve "
            "never unpickles arbitrary objects: save the state dict, "
            "torch.save(model.state_dict(), path), or use safetensors"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise ModelImportError(f"{path.name} is not a torch.save file: {exc}") from exc
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise ModelImportError(
            f"{path.name} holds a {type(loaded).__name__}, not a state dict of named tensors; "
            "save model.state_dict()"
        )
    return dict(loaded)


def read_state_dict(state: dict[str, torch.Tensor], activation: Activation) -> ImportedNetwork:
    """The `nn.Linear` layers of an `nn.Sequential` state dict, in order.

    Raises:
        ModelImportError: a key that is not a layer's weight or bias, a weight that is not a
            floating 2-D matrix, a bias of the wrong size, or sizes that do not chain.
    """
    layers: dict[int, dict[str, torch.Tensor]] = {}
    prefixes: set[str] = set()
    for key, tensor in state.items():
        match = _KEY.match(key)
        if match is None:
            raise ModelImportError(
                f"key {key!r} is not the weight or bias of a numbered layer (like '0.weight'); "
                "dropserve imports nn.Sequential MLPs of nn.Linear layers"
            )
        if not tensor.is_floating_point():
            raise ModelImportError(f"key {key!r} holds {tensor.dtype} values, not floats")
        prefixes.add(match["prefix"])
        layers.setdefault(int(match["layer"]), {})[match["kind"]] = tensor
    if len(prefixes) > 1:
        raise ModelImportError(f"the keys mix module prefixes {sorted(prefixes)}: one MLP only")
    if not layers:
        raise ModelImportError("the state dict is empty")
    prefix = prefixes.pop()
    weights: list[npt.NDArray[np.float64]] = []
    biases: list[npt.NDArray[np.float64]] = []
    for number in sorted(layers):
        tensors = layers[number]
        key = f"{prefix}{number}.weight"
        if "weight" not in tensors:
            raise ModelImportError(f"key {prefix}{number}.bias has no {key!r} beside it")
        weight = tensors["weight"].detach().double().numpy()
        if weight.ndim != 2:
            raise ModelImportError(
                f"key {key!r} has shape {list(weight.shape)}; an nn.Linear weight is 2-D "
                "(convolutions and other layers are not imported)"
            )
        if weights and weight.shape[1] != weights[-1].shape[0]:
            raise ModelImportError(
                f"key {key!r} has shape {list(weight.shape)}: it takes {weight.shape[1]} inputs, "
                f"but the layer before gives {weights[-1].shape[0]}"
            )
        bias = tensors.get("bias")
        bias_values = np.zeros(weight.shape[0]) if bias is None else bias.double().numpy()
        if bias_values.shape != (weight.shape[0],):
            raise ModelImportError(
                f"key {prefix}{number}.bias has shape {list(bias_values.shape)}, but its layer "
                f"has {weight.shape[0]} outputs"
            )
        weights.append(weight)
        biases.append(bias_values)
    n_features = weights[0].shape[1]
    return ImportedNetwork(
        weights=weights,
        biases=biases,
        activation=activation,
        rates=None,
        head=None,
        input_scale=np.ones(n_features),
        input_shift=np.zeros(n_features),
    )


def torch_reference(network: ImportedNetwork, keeps: list[float] | None) -> Reference:
    """The state dict run in torch eval as the `nn.Sequential` it came from, in float32.

    `keeps` (classic style) scales each layer's input by its keep probability.
    """
    modules: list[nn.Module] = []
    for index, (weight, bias) in enumerate(zip(network.weights, network.biases, strict=True)):
        linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            factor = 1.0 if keeps is None else keeps[index]
            linear.weight.copy_(torch.as_tensor(weight * factor))
            linear.bias.copy_(torch.as_tensor(bias))
        if index:
            modules.append(ACTIVATIONS[network.activation]())
        modules.append(linear)
    sequential = nn.Sequential(*modules).eval()

    def run(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        with torch.inference_mode():
            out = sequential(torch.as_tensor(rows, dtype=torch.float32))
        return np.asarray(out.double().numpy(), dtype=np.float64)

    return run
