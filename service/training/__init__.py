"""Training: the trainer (one network, or a stack of many at once), weight decay, the tau fit,
and CSV loading.

Everything exported here runs with torch and numpy alone, so the UCI study (`bench.uci`) trains
where the serving stack is not installed. Writing a bundle needs that stack, so it is imported
from its modules: `service.training.pipeline.train_bundle` with
`service.training.options.TrainOptions` (`dropserve train`) and
`service.training.reexport.reexport_bundle`.
"""

from service.training.data import TrainingData, load_csv
from service.training.decay import parameter_groups, prior_weight_decay
from service.training.stacked import Stack, fit_stacked
from service.training.tau import (
    TauFit,
    fit_tau,
    fit_tau_stacked,
    mc_log_likelihood,
    mc_log_likelihood_stacked,
)
from service.training.trainer import EpochRecord, FitResult, fit

__all__ = [
    "EpochRecord",
    "FitResult",
    "Stack",
    "TauFit",
    "TrainingData",
    "fit",
    "fit_stacked",
    "fit_tau",
    "fit_tau_stacked",
    "load_csv",
    "mc_log_likelihood",
    "mc_log_likelihood_stacked",
    "parameter_groups",
    "prior_weight_decay",
]
