"""The bundle manifest: the schema of `manifest.json`, validated on every load."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.bundle.digest import DIGEST_PATTERN
from service.model import MLPConfig, Standardizer

__all__ = [
    "BUNDLE_FILES",
    "MANIFEST_FILE",
    "ONNX_FILE",
    "WEIGHTS_FILE",
    "Architecture",
    "ImportInfo",
    "Manifest",
    "Normalization",
    "OnnxInfo",
    "TrainingInfo",
]

MANIFEST_FILE = "manifest.json"
ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "weights.safetensors"

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
Rate = Annotated[float, Field(ge=0.0, lt=1.0)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
MAX_EXAMPLES = 16
BUNDLE_FILES = (ONNX_FILE, WEIGHTS_FILE)
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Architecture(_Strict):
    """Network shape and dropout configuration (mirrors `MLPConfig`)."""

    hidden: list[Annotated[int, Field(ge=1)]]
    dropout: list[Rate]
    input_dropout: Rate = 0.0
    style: Literal["inverted", "classic"] = "inverted"
    activation: Literal["relu", "tanh", "gelu", "sigmoid"] = "relu"

    @classmethod
    def of(cls, config: MLPConfig) -> Architecture:
        """The manifest's shape of `config`: less the widths and task, which the manifest's
        features, outputs and task already say."""
        return cls.model_validate(
            {
                key: value
                for key, value in config.to_dict().items()
                if key not in {"n_features", "n_outputs", "task"}
            }
        )


class Normalization(_Strict):
    """Training-split statistics; clients send raw values and the bundle standardises them."""

    feature_mean: list[FiniteFloat]
    feature_std: list[PositiveFloat]
    target_mean: list[FiniteFloat] | None = None
    target_std: list[PositiveFloat] | None = None


class OnnxInfo(_Strict):
    """How the ONNX graph was exported and how closely it reproduced PyTorch eval."""

    opset: int
    input_name: str
    output_names: list[str]
    parity_max_error: FiniteFloat = Field(description="max |onnx - torch| / max(|torch|, 1)")
    parity_tolerance: PositiveFloat


class TrainingInfo(_Strict):
    """How the weights were produced, so a bundle can be reproduced and audited."""

    data_file: str
    data_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows_train: int = Field(ge=1)
    rows_validation: int = Field(ge=0)
    epochs: int = Field(ge=0)
    batch_size: int = Field(ge=1)
    learning_rate: PositiveFloat
    weight_decay: Annotated[float, Field(ge=0.0)]
    seed: int
    tau_samples: int = Field(ge=0, default=0)
    # Optional so that manifests written before these fields existed still load.
    weight_decay_per_layer: list[Annotated[float, Field(ge=0.0)]] | None = Field(
        default=None, description="lambda_k of ||W_k||^2 in the loss, per Linear layer"
    )
    prior_length_scale: PositiveFloat | None = None
    prior_tau: PositiveFloat | None = None
    validation_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    patience: int | None = Field(default=None, ge=0, description="0: a fixed number of epochs")
    kept_epoch: int | None = Field(default=None, ge=1, description="epoch whose weights were saved")


class ImportInfo(_Strict):
    """Where an imported network came from, so a bundle that was not trained here can be audited."""

    format: Literal["onnx", "torch"]
    source_file: str
    source_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    importer_version: int = Field(ge=1, description="bumped when the reading rules change")
    producer: str = Field(default="", description="the exporter the file names, if any")
    parity_max_error: FiniteFloat = Field(
        description="max |bundle - original| / max(|original|, 1) over the checked rows"
    )
    parity_rows: int = Field(ge=1)
    calibration_file: str | None = None
    calibration_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    calibration_rows: int | None = Field(default=None, ge=1)
    tau_samples: int = Field(ge=0, default=0)
    seed: int = 0


class Manifest(_Strict):
    """Everything about one model version except its weights."""

    schema_version: Literal[1] = 1
    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    task: Literal["regression", "classification"]
    description: str = ""
    features: list[str] = Field(min_length=1)
    targets: list[str] = Field(min_length=1, description="target column names in the data")
    classes: list[str] | None = Field(default=None, description="class labels (classification)")
    architecture: Architecture
    normalization: Normalization
    tau: list[PositiveFloat] | None = Field(
        default=None, description="observation noise precision per output (regression)"
    )
    metrics: dict[str, FiniteFloat] = Field(default_factory=dict)
    # Optional so that bundles written before examples were recorded still load.
    examples: list[list[FiniteFloat]] | None = Field(
        default=None,
        max_length=MAX_EXAMPLES,
        description="a few held-out validation rows (training rows when none were held out), "
        "raw units in feature order, for clients to try the model with",
    )
    # A bundle was either trained here or imported; exactly one of the two records says how.
    training: TrainingInfo | None = None
    imported: ImportInfo | None = None
    onnx: OnnxInfo
    library_versions: dict[str, str]
    created_at: datetime
    files: dict[str, Sha256] = Field(description="sha256 of every other file in the bundle")
    digest: str | None = Field(
        default=None,
        pattern=DIGEST_PATTERN,
        description="sha256 of this manifest's canonical JSON without this field "
        "(service.bundle.digest); written by save_bundle and `dropserve sign`",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        n_features = len(self.features)
        if len(set(self.features)) != n_features:
            raise ValueError("feature names must be unique")
        norm = self.normalization
        if len(norm.feature_mean) != n_features or len(norm.feature_std) != n_features:
            raise ValueError(f"normalization must have {n_features} feature statistics")
        if any(len(row) != n_features for row in self.examples or []):
            raise ValueError(f"every example row must have {n_features} values")
        if len(self.architecture.dropout) != len(self.architecture.hidden):
            raise ValueError("architecture needs one dropout rate per hidden layer")
        if self.task == "classification":
            if not self.classes or len(self.classes) < 2:
                raise ValueError("a classification manifest needs at least two classes")
            if len(self.targets) != 1:
                raise ValueError("a classification manifest has exactly one target column")
        else:
            n_out = len(self.targets)
            if self.tau is None or len(self.tau) != n_out:
                raise ValueError(f"a regression manifest needs tau for each of its {n_out} outputs")
            if norm.target_mean is None or norm.target_std is None:
                raise ValueError("a regression manifest needs target normalization statistics")
            if len(norm.target_mean) != n_out or len(norm.target_std) != n_out:
                raise ValueError(f"normalization must have {n_out} target statistics")
        if (self.training is None) == (self.imported is None):
            raise ValueError(
                "a manifest needs exactly one of training (a bundle trained here) and imported "
                "(a bundle imported from another framework)"
            )
        for required in BUNDLE_FILES:
            if required not in self.files:
                raise ValueError(f"files must list {required}")
        # Only the bundle's own plain file names: an entry is a path the loader would open.
        unknown = sorted(set(self.files) - set(BUNDLE_FILES))
        if unknown:
            raise ValueError(
                f"files lists {', '.join(repr(u) for u in unknown)}; a bundle holds only "
                f"{' and '.join(BUNDLE_FILES)}, in its own folder"
            )
        return self

    @property
    def n_outputs(self) -> int:
        """Width of the network's last layer: classes or regression targets."""
        return len(self.classes) if self.classes else len(self.targets)

    @property
    def output_names(self) -> list[str]:
        """What each output column means: class labels or target names."""
        return list(self.classes) if self.classes else list(self.targets)

    def mlp_config(self) -> MLPConfig:
        arch = self.architecture
        return MLPConfig(
            n_features=len(self.features),
            n_outputs=self.n_outputs,
            task=self.task,
            hidden=tuple(arch.hidden),
            dropout=tuple(arch.dropout),
            input_dropout=arch.input_dropout,
            style=arch.style,
            activation=arch.activation,
        )

    def standardizer(self) -> Standardizer:
        norm = self.normalization
        return Standardizer(
            tuple(norm.feature_mean),
            tuple(norm.feature_std),
            None if norm.target_mean is None else tuple(norm.target_mean),
            None if norm.target_std is None else tuple(norm.target_std),
        )
