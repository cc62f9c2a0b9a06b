"""The two ways in: `import_onnx_file` and `import_torch_file`, each a read, a check and a save."""

from __future__ import annotations

import hashlib
from pathlib import Path

from service.bundle import Manifest
from service.errors import ModelImportError
from service.importers.bundle import SourceFile, import_bundle
from service.importers.network import Reference
from service.importers.onnx_chain import read_chain
from service.importers.onnx_graph import index_graph, parse_model
from service.importers.onnx_reference import onnx_reference
from service.importers.options import ImportOptions
from service.importers.torch_state import load_state_dict, read_state_dict, torch_reference
from service.model.mlp import Activation

__all__ = ["import_onnx_file", "import_torch_file"]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelImportError(f"{path}: cannot read the file ({exc.strerror})") from exc


def import_onnx_file(path: Path, options: ImportOptions) -> Manifest:
    """Import an ONNX graph of an MLP as the next version of bundle `options.name`.

    Args:
        path: the .onnx file.
        options: names, task, dropout, tau or calibration data, where to write.

    Returns:
        The saved manifest.

    Raises:
        ModelImportError: the file does not parse, is not an MLP chain (the message names the
            node), ONNX Runtime cannot run it, metadata is missing, or parity fails.
        DataError: the calibration CSV cannot be used.
    """
    data = _read(path)
    model = parse_model(data, path)
    network = read_chain(index_graph(model))
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    # Load it in ONNX Runtime now, so an unrunnable opset is refused before anything else runs.
    onnx_reference(model, [], path.name)

    def reference(keeps: list[float] | None) -> Reference:
        pairs = [] if keeps is None else list(zip(network.affine_nodes, keeps, strict=True))
        return onnx_reference(model, pairs, path.name)

    source = SourceFile("onnx", path.name, hashlib.sha256(data).hexdigest(), producer, reference)
    return import_bundle(network, source, options)


def import_torch_file(path: Path, activation: Activation, options: ImportOptions) -> Manifest:
    """Import a PyTorch `nn.Sequential` MLP state dict (safetensors or `torch.save`).

    Args:
        path: the .safetensors or .pt file.
        activation: the activation between the layers, which a state dict does not record.
        options: names, task, dropout, tau or calibration data, where to write.

    Raises:
        ModelImportError: the file is not a state dict of linear layers (the message names the
            key), its pickle holds more than tensors, metadata is missing, or parity fails.
        DataError: the calibration CSV cannot be used.
    """
    data = _read(path)
    network = read_state_dict(load_state_dict(path, data), activation)

    def reference(keeps: list[float] | None) -> Reference:
        return torch_reference(network, keeps)

    source = SourceFile("torch", path.name, hashlib.sha256(data).hexdigest(), "", reference)
    return import_bundle(network, source, options)
