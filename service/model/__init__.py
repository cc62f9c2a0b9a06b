"""The dropout network and the feature/target standardisation it is trained with."""

from service.model.mlp import DropoutMLP, DropoutStyle, MLPConfig, Task, dropout
from service.model.scaling import Standardizer

__all__ = ["DropoutMLP", "DropoutStyle", "MLPConfig", "Standardizer", "Task", "dropout"]
