"""Serve a network trained elsewhere: ONNX graphs and PyTorch state dicts become bundles."""

from service.importers.bundle import IMPORTER_VERSION
from service.importers.options import ImportOptions
from service.importers.sources import import_onnx_file, import_torch_file

__all__ = ["IMPORTER_VERSION", "ImportOptions", "import_onnx_file", "import_torch_file"]
