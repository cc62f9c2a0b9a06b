"""Reading `nn.Sequential` state dicts: sizes from the weights, and every file that is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from service.errors import ModelImportError
from service.importers.torch_state import load_state_dict, read_state_dict, torch_reference


def mlp_state(prefix: str = "") -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.1), nn.Linear(8, 2))
    return {f"{prefix}{key}": value for key, value in net.state_dict().items()}


@pytest.mark.parametrize("prefix", ["", "net.", "model.layers."])
def test_layer_sizes_come_from_the_weight_shapes(prefix: str) -> None:
    network = read_state_dict(mlp_state(prefix), "tanh")
    assert (network.n_features, network.hidden, network.n_outputs) == (3, (8,), 2)
    assert network.rates is None  # a state dict has no dropout: the flags must give it


def test_reference_is_the_sequential_in_eval() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.1), nn.Linear(8, 2)).eval()
    rows = np.random.default_rng(0).normal(size=(5, 3))
    expected = net(torch.as_tensor(rows, dtype=torch.float32)).detach().double().numpy()
    run = torch_reference(read_state_dict(net.state_dict(), "tanh"), None)
    np.testing.assert_allclose(run(rows), expected, rtol=1e-6)


def _batchnorm(state: dict[str, torch.Tensor]) -> None:
    state["1.running_mean"] = torch.zeros(8)


def _conv(state: dict[str, torch.Tensor]) -> None:
    state["0.weight"] = torch.zeros(8, 3, 3, 3)


def _mismatch(state: dict[str, torch.Tensor]) -> None:
    state["3.weight"] = torch.zeros(2, 5)


def _bias(state: dict[str, torch.Tensor]) -> None:
    state["3.bias"] = torch.zeros(3)


def _integers(state: dict[str, torch.Tensor]) -> None:
    state["3.bias"] = torch.zeros(2, dtype=torch.int64)


def _two_models(state: dict[str, torch.Tensor]) -> None:
    state["other.5.weight"] = torch.zeros(2, 2)


BAD_STATES = {
    "batchnorm": (_batchnorm, r"key '1.running_mean' is not the weight or bias"),
    "conv": (_conv, r"key '0.weight' has shape \[8, 3, 3, 3\]; an nn.Linear weight is 2-D"),
    "mismatch": (
        _mismatch,
        r"key '3.weight' has shape \[2, 5\]: it takes 5 inputs, but the layer before gives 8",
    ),
    "bias": (_bias, r"key 3.bias has shape \[3\], but its layer has 2 outputs"),
    "integers": (_integers, r"key '3.bias' holds torch.int64 values"),
    "two models": (_two_models, r"mix module prefixes"),
}


@pytest.mark.parametrize("case", list(BAD_STATES))
def test_bad_state_dict_is_refused_naming_the_key(case: str) -> None:
    edit, message = BAD_STATES[case]
    state = mlp_state()
    edit(state)
    with pytest.raises(ModelImportError, match=message):
        read_state_dict(state, "relu")


def test_safetensors_and_torch_save_load_alike(tmp_path: Path) -> None:
    state = mlp_state()
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save(state, tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        path = tmp_path / name
        loaded = load_state_dict(path, path.read_bytes())
        assert loaded.keys() == state.keys()


class Payload:
    """Stands for any object a pickle could carry; weights_only refuses to build it."""


def test_pickle_with_objects_is_refused_without_running_it(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"0.weight": torch.zeros(2, 2), "extra": Payload()}, path)
    with pytest.raises(
        ModelImportError, match=r"model.pt: torch.load\(weights_only=True\) refuses it"
    ):
        load_state_dict(path, path.read_bytes())


def test_whole_module_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(nn.Sequential(nn.Linear(2, 2)), path)
    with pytest.raises(ModelImportError, match="weights_only=True"):
        load_state_dict(path, path.read_bytes())


def test_file_that_is_neither_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"not tensors")
    with pytest.raises(ModelImportError, match=r"model\.safetensors is not a safetensors file"):
        load_state_dict(path, path.read_bytes())
