"""Training: CSV in, validated bundle out (`dropserve train`), and ONNX re-export."""

from service.training.data import TrainingData, load_csv
from service.training.decay import parameter_groups, prior_weight_decay
from service.training.options import TrainOptions
from service.training.pipeline import split_rows, train_bundle
from service.training.reexport import reexport_bundle
from service.training.tau import TauFit, fit_tau, mc_log_likelihood
from service.training.trainer import EpochRecord, FitResult, fit

__all__ = [
    "EpochRecord",
    "FitResult",
    "TauFit",
    "TrainOptions",
    "TrainingData",
    "fit",
    "fit_tau",
    "load_csv",
    "mc_log_likelihood",
    "parameter_groups",
    "prior_weight_decay",
    "reexport_bundle",
    "split_rows",
    "train_bundle",
]
