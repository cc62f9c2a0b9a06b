"""All configuration in one pydantic-settings class (`DROPSERVE_` environment prefix)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.resources import available_cpus

__all__ = ["MAX_PROCESSES", "Settings", "get_settings"]

MAX_PROCESSES = 64  # also the most DROPSERVE_PROCESSES=0 starts on a bigger machine


class Settings(BaseSettings):
    """dropserve settings; every field can be set as `DROPSERVE_<FIELD>` (CLI flags override)."""

    model_config = SettingsConfigDict(env_prefix="DROPSERVE_", extra="ignore", frozen=True)

    models_dir: Path = Field(Path("models"), description="Folder of bundles: <name>/<version>/.")
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on.")
    processes: int = Field(
        0,
        ge=0,
        le=MAX_PROCESSES,
        description="Server processes sharing the port, each with its own models, queue and "
        "metrics (one Python process uses about one core); beyond 1 a supervisor process "
        "restarts any that die. 0: one per core this server may use (CPU affinity and cgroup "
        "quota), no more than fit in its memory; one when MC dropout runs on CUDA.",
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
        description="MC-dropout device: auto (CUDA when available), cpu, cuda or cuda:N.",
    )
    precision: Literal["fp32", "tf32", "bf16", "auto"] = Field(
        "fp32",
        description="MC forward arithmetic: fp32; tf32 (CUDA only, fp32 elsewhere); bf16; or "
        "auto, the fastest whose error stays under half the request's MC standard error (bf16 "
        "up to T=100, then tf32, on CUDA; on CPUs with native bf16, bf16 up to T=100 for networks "
        "with a layer of 256 x 256 or more; else fp32).",
    )
    cuda_graphs: bool = Field(
        True,
        description="On CUDA, replay captured graphs for MC requests of up to 64 rows that fit "
        "one chunk (no effect on the CPU).",
    )
    default_samples: int = Field(100, ge=1, description="T when a request does not say.")
    max_samples: int = Field(10_000, ge=1, description="Largest T a request may ask for.")
    max_rows: int = Field(1024, ge=1, description="Most rows in one request.")
    max_work: int = Field(
        2_000_000, ge=1, description="Most rows x samples in one uncertainty request."
    )
    max_return_samples: int = Field(
        1000, ge=0, description="Largest T for which `return_samples` is allowed."
    )
    max_returned_values: int = Field(
        1_000_000,
        ge=1,
        description="Most pass outputs returned in one answer (rows x samples x outputs, with "
        "`return_samples` or the /v2 `draws` output): about 22 bytes of JSON each, so the "
        "default bounds such an answer near 22 MB; more answers 422 (/v2 400).",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest request body; larger answers 413."
    )

    # Reading a request: bounds that the HTTP protocol enforces as the bytes arrive, before the
    # app sees the request (service.hosting.protocol), so that no client can hold memory, the
    # event loop or a connection for long without sending a whole request.
    max_header_bytes: int = Field(
        32 * 1024,
        ge=1024,
        description="Largest request line and headers together (bytes); larger answers 431.",
    )
    max_header_line_bytes: int = Field(
        8 * 1024,
        ge=256,
        description="Largest request line (larger answers 414) or single header (431), bytes.",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Seconds a request's line and headers may take to arrive, from the "
        "connection or the request's first byte; later answers 408 and closes.",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Seconds a request's body may take to arrive after its headers (the 8 MiB "
        "default body limit needs 2.3 Mbit/s); later answers 408 and closes.",
    )
    max_connections: int = Field(
        1024,
        ge=1,
        description="Open connections per server process; one more answers 503 and closes.",
    )
    mc_chunk_elements: int = Field(
        2_097_152,
        ge=1024,
        description="Bound on stacked activations per MC chunk (passes x rows x widest layer); "
        "the default, 4096 rows of a 512-wide layer, keeps a chunk in cache and peak memory at "
        "about 9 bytes per element.",
    )
    inference_threads: int = Field(
        0,
        ge=0,
        description="Worker threads per server process that run inference off the event loop "
        "(0: the cores the server may use, affinity and cgroup CPU limit, shared out among "
        "the processes, at least one each).",
    )
    torch_threads: int = Field(
        1,
        ge=0,
        description="torch intra-op threads per worker (0: torch's default, all cores). With one "
        "worker per core, one thread each keeps the cores busy without oversubscribing them.",
    )
    onnx_threads: int = Field(
        1, ge=0, description="ONNX Runtime intra-op threads per session (0: its default)."
    )

    @property
    def workers(self) -> int:
        """Inference worker threads in effect in each server process."""
        # Measured on 2 cores, W2 (64-row predictions): one process ran best with 2 threads,
        # two processes with 1 each (1.7x the throughput of 2 each). processes=0 resolves to
        # one per core (service.hosting.supervisor.process_count), so one worker each.
        cores = available_cpus()
        return self.inference_threads or max(1, cores // (self.processes or cores))

    warmup_rounds: int = Field(
        2, ge=0, description="Warm-up passes per engine before the model counts as ready."
    )
    inline_max_macs: int = Field(
        50_000_000,
        ge=0,
        description="Inference calls of at most this many multiply-adds (rows x network size, "
        "x T for uncertainty; 50M is about 1 ms on one core) run on the event loop: cheaper "
        "than the hop to a worker thread and its contention for the core (0: always a worker).",
    )
    fast_path: bool = Field(
        True,
        description="Answer well-formed v1 predict/uncertainty requests without FastAPI's "
        "routing and validation (same bytes, several times less overhead); false sends every "
        "request through FastAPI.",
    )
    batching: bool = Field(
        True,
        description="Dynamic batching: requests for the same model, mode and T that queue "
        "while the inference workers are busy (or within the batch window) run as one engine "
        "call when a worker frees up (seeded MC requests always run alone).",
    )
    batch_max_delay_ms: float = Field(
        0.0,
        ge=0,
        description="Longest a request waits for others to join its batch while another worker "
        "is busy (ms); with every worker idle it runs at once. 0 batches the requests parsed "
        "together and those that queued behind busy workers.",
    )
    batch_max_rows: int = Field(256, ge=1, description="Rows at which a batch runs at once.")
    max_queue: int = Field(
        64,
        ge=0,
        description="Inference requests that may wait for a worker; beyond it answer 503.",
    )
    request_timeout_s: float = Field(
        60.0, gt=0, description="Seconds a request may wait and compute before it answers 504."
    )
    shutdown_grace_s: float = Field(
        30.0, ge=0, description="Seconds in-flight requests get to finish after SIGTERM."
    )
    drain_delay_s: float = Field(
        0.0,
        ge=0,
        description="Seconds to keep accepting requests after SIGTERM while readiness is 503, "
        "so load balancers stop routing first.",
    )
    admin_token: SecretStr | None = Field(
        None, description="Bearer token for /admin; unset disables the admin endpoints (403)."
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated keys required on model endpoints (empty: no key needed).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated origins allowed by CORS (empty: off)."
    )
    log_level: str = Field("info", description="Logging level: debug, info, warning, error.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text (for a terminal) or json (one object per line; the "
        "image sets json).",
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of a separate Prometheus listener; 0 serves /metrics on the main port.",
    )
    ui: bool = Field(
        True,
        description="Serve the playground page at / and /ui/ (a model's prediction and its "
        "uncertainty in the browser); false answers 404 there.",
    )
    follow_outside_symlinks: bool = Field(
        False,
        description="Follow symlinks in the models folder that lead outside it (a bundle's "
        "folder or files kept elsewhere); false refuses such a bundle. Links that stay inside "
        "the folder, such as a Kubernetes volume's, are always followed.",
    )
    max_bundle_file_bytes: int = Field(
        1 << 30,  # service.bundle.DEFAULT_MAX_FILE_BYTES; not imported, which would load torch
        ge=1024,
        description="Largest ONNX graph or weights file a bundle may have, checked before it is "
        "read (a manifest may have 1 MiB).",
    )
    bundle_load_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Seconds a model version may take to verify, load and warm up; a slower "
        "one is reported failed and the reload goes on without it.",
    )
    watch_s: float = Field(
        2.0,
        ge=0,
        description="Seconds between looks at the models folder: new, changed and removed "
        "bundle versions are reloaded as /admin/reload does (verified, loaded beside, swapped "
        "in; a failing one reported while the serving version keeps serving) once the folder "
        "has held still for one look. Each server process watches for itself. 0: no watching.",
    )

    @field_validator("admin_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `DROPSERVE_ADMIN_TOKEN=` must disable admin, not enable it with an empty token.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (CLI flags, tests) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
