"""What users hand-write today: FastAPI + PyTorch eval, and a Python loop of T passes for MC.

`BENCH_MODELS_DIR=... uvicorn bench.servers.naive:app`. Loads the newest version of every
bundle in BENCH_MODELS_DIR (weights only) and runs inference on the event loop, as such servers
usually do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI
from pydantic import BaseModel

from service.bundle import discover, load_bundle

torch.set_num_threads(1)
app = FastAPI()
NETWORKS = {
    name: load_bundle(versions[max(versions)]).network
    for name, versions in discover(Path(os.environ.get("BENCH_MODELS_DIR", "models"))).items()
}


class Body(BaseModel):
    instances: list[list[float]]
    samples: int = 100
    seed: int | None = None


@app.post("/v1/models/{name}/predict")
def predict(name: str, body: Body) -> dict[str, Any]:
    network = NETWORKS[name]
    network.eval()
    with torch.no_grad():
        out = network(torch.tensor(body.instances))
    return {"predictions": out.tolist()}


@app.post("/v1/models/{name}/uncertainty")
def uncertainty(name: str, body: Body) -> dict[str, Any]:
    network = NETWORKS[name]
    network.train()
    x = torch.tensor(body.instances)
    with torch.no_grad():
        passes = torch.stack([network(x) for _ in range(body.samples)])
    network.eval()
    return {"mean": passes.mean(0).tolist(), "variance": passes.var(0).tolist()}


@app.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}
