"""dropserve: serve dropout-trained MLPs with deterministic ONNX and MC-dropout uncertainty."""

__version__ = "0.1.0"
