"""What the client returns: frozen dataclasses over the JSON answers, each keeping the JSON.

Typed results rather than dicts: an editor completes `result.labels` and mypy checks it, while
`raw` keeps every field of the answer, the ones a newer server adds included.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

__all__ = [
    "ClassUncertainty",
    "ModelDetail",
    "ModelSummary",
    "PredictResult",
    "RegressionUncertainty",
    "UncertaintyResult",
]

Task = Literal["regression", "classification"]
Json = dict[str, Any]
_Row = TypeVar("_Row", "RegressionUncertainty", "ClassUncertainty")


def _known(row: Json, names: Iterable[str]) -> Json:
    # Fields a newer server adds are left to `raw` rather than breaking the constructor.
    return {name: row[name] for name in names if name in row}


@dataclass(frozen=True)
class ModelSummary:
    """One entry of `GET /v1/models`."""

    name: str
    versions: list[int]
    latest: int
    task: Task
    description: str

    @classmethod
    def from_json(cls, data: Json) -> ModelSummary:
        return cls(
            name=data["name"],
            versions=list(data["versions"]),
            latest=data["latest"],
            task=data["task"],
            description=data.get("description", ""),
        )


@dataclass(frozen=True)
class ModelDetail:
    """`GET /v1/models/{name}`: what a caller needs to build rows; the rest is in `raw`."""

    name: str
    version: int
    versions: list[int]
    task: Task
    description: str
    features: list[str]
    outputs: list[str]
    classes: list[str] | None
    examples: list[list[float]]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> ModelDetail:
        return cls(
            name=data["name"],
            version=data["version"],
            versions=list(data["versions"]),
            task=data["task"],
            description=data.get("description", ""),
            features=list(data["features"]),
            outputs=list(data["outputs"]),
            classes=data.get("classes"),
            examples=data.get("examples", []),
            raw=data,
        )


@dataclass(frozen=True)
class PredictResult:
    """A deterministic prediction.

    `values` has one list per row: the output values (regression) or the class probabilities
    in the order of `outputs` (classification); `labels` is the most probable class of each row
    for classification and None for regression.
    """

    model: str
    version: int
    task: Task
    outputs: list[str]
    values: list[list[float]]
    labels: list[str] | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> PredictResult:
        rows = data["predictions"]
        if data["task"] == "classification":
            values = [row["probabilities"] for row in rows]
            labels: list[str] | None = [row["label"] for row in rows]
        else:
            values, labels = rows, None
        return cls(
            model=data["model"],
            version=data["version"],
            task=data["task"],
            outputs=list(data["outputs"]),
            values=values,
            labels=labels,
            raw=data,
        )


@dataclass(frozen=True)
class RegressionUncertainty:
    """One row of a regression answer; each list has one entry per output."""

    mean: list[float]
    variance: list[float]
    std: list[float]
    epistemic_variance: list[float]
    aleatoric_variance: list[float]
    lower: list[float]
    upper: list[float]
    samples: list[list[float]] | None = None

    @classmethod
    def from_json(cls, row: Json) -> RegressionUncertainty:
        return cls(**_known(row, cls.__dataclass_fields__))


@dataclass(frozen=True)
class ClassUncertainty:
    """One row of a classification answer; entropies and mutual information in nats."""

    label: str
    probabilities: list[float]
    variance: list[float]
    std: list[float]
    predictive_entropy: float
    expected_entropy: float
    mutual_information: float
    samples: list[list[float]] | None = None

    @classmethod
    def from_json(cls, row: Json) -> ClassUncertainty:
        return cls(**_known(row, cls.__dataclass_fields__))


@dataclass(frozen=True)
class UncertaintyResult:
    """A Monte-Carlo dropout answer: how it ran, and one summary per row.

    `rows` holds `RegressionUncertainty` or `ClassUncertainty` entries after `task`;
    `regression` and `classification` return them typed, and raise TypeError for the other task.
    """

    model: str
    version: int
    task: Task
    outputs: list[str]
    samples: int
    seed: int
    interval: float | None
    device: str
    precision: str
    rows: list[RegressionUncertainty] | list[ClassUncertainty]
    raw: Json = field(repr=False, compare=False)

    @property
    def regression(self) -> list[RegressionUncertainty]:
        return [self._expect(row, RegressionUncertainty) for row in self.rows]

    @property
    def classification(self) -> list[ClassUncertainty]:
        return [self._expect(row, ClassUncertainty) for row in self.rows]

    def _expect(self, row: object, kind: type[_Row]) -> _Row:
        if not isinstance(row, kind):
            raise TypeError(f"model {self.model!r} is a {self.task} model; read its rows as such")
        return row

    @classmethod
    def from_json(cls, data: Json) -> UncertaintyResult:
        rows: list[RegressionUncertainty] | list[ClassUncertainty]
        if data["task"] == "classification":
            rows = [ClassUncertainty.from_json(row) for row in data["predictions"]]
        else:
            rows = [RegressionUncertainty.from_json(row) for row in data["predictions"]]
        return cls(
            model=data["model"],
            version=data["version"],
            task=data["task"],
            outputs=list(data["outputs"]),
            samples=data["samples"],
            seed=data["seed"],
            interval=data.get("interval"),
            device=data["device"],
            precision=data["precision"],
            rows=rows,
            raw=data,
        )
