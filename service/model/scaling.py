"""Feature and target standardisation, fitted on the training split and stored in the bundle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Standardizer"]

FloatArray = npt.NDArray[np.float64]


def _safe_std(values: FloatArray) -> FloatArray:
    # A constant column gets std 1 (the UCI protocol's rule) instead of a division by zero.
    std = values.std(axis=0)
    return np.where(std > 0, std, 1.0)


@dataclass(frozen=True)
class Standardizer:
    """z-scores with training statistics (ddof=0). Target statistics are None for classification."""

    feature_mean: tuple[float, ...]
    feature_std: tuple[float, ...]
    target_mean: tuple[float, ...] | None = None
    target_std: tuple[float, ...] | None = None

    @classmethod
    def fit(cls, features: FloatArray, targets: FloatArray | None = None) -> Standardizer:
        """Fit on training rows; pass `targets` (rows, outputs) only for regression."""
        if targets is None:
            return cls(tuple(features.mean(axis=0)), tuple(_safe_std(features)))
        return cls(
            tuple(features.mean(axis=0)),
            tuple(_safe_std(features)),
            tuple(targets.mean(axis=0)),
            tuple(_safe_std(targets)),
        )

    def features(self, raw: FloatArray) -> FloatArray:
        scaled: FloatArray = (raw - np.asarray(self.feature_mean)) / np.asarray(self.feature_std)
        return scaled

    def targets(self, raw: FloatArray) -> FloatArray:
        if self.target_mean is None or self.target_std is None:
            raise ValueError("this standardizer has no target statistics (classification model)")
        scaled: FloatArray = (raw - np.asarray(self.target_mean)) / np.asarray(self.target_std)
        return scaled

    def inverse_targets(self, scaled: FloatArray) -> FloatArray:
        if self.target_mean is None or self.target_std is None:
            raise ValueError("this standardizer has no target statistics (classification model)")
        raw: FloatArray = scaled * np.asarray(self.target_std) + np.asarray(self.target_mean)
        return raw
