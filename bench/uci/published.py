"""Published UCI results of MC dropout (mean and standard error over 20 splits).

From ../shared/data/uci/README.md: paper Table 1 (Gal & Ghahramani, ICML 2016: 400 epochs, tau by
Bayesian optimisation) and the 2018 re-run of yaringal/DropoutUncertaintyExps (4,000 epochs,
grid search on a validation split), which is the protocol `bench.uci` follows.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["PUBLISHED", "Published"]


class Published(NamedTuple):
    """(mean, standard error) of test RMSE and log-likelihood for one source."""

    rmse: tuple[float, float]
    log_likelihood: tuple[float, float]


PUBLISHED: dict[str, dict[str, Published]] = {
    "concrete": {
        "paper": Published((5.23, 0.12), (-3.04, 0.02)),
        "grid_2018": Published((4.82, 0.16), (-2.93, 0.02)),
    },
    "energy": {
        "paper": Published((1.66, 0.04), (-1.99, 0.02)),
        "grid_2018": Published((0.54, 0.01), (-1.21, 0.01)),
    },
    "kin8nm": {
        "paper": Published((0.10, 0.00), (0.95, 0.01)),
        "grid_2018": Published((0.08, 0.00), (1.14, 0.01)),
    },
    "power-plant": {
        "paper": Published((4.02, 0.04), (-2.80, 0.01)),
        "grid_2018": Published((4.01, 0.04), (-2.80, 0.01)),
    },
    "yacht": {
        "paper": Published((1.11, 0.09), (-1.55, 0.03)),
        "grid_2018": Published((0.67, 0.05), (-1.25, 0.02)),
    },
}
