"""The HTTP floor: FastAPI parsing the same JSON into a pydantic model and returning a constant.

`uvicorn bench.servers.hello:app`. No model runs: whatever dropserve spends beyond this is its
own overhead (validation, inference, serialisation).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    instances: list[list[float]]
    samples: int | None = None
    seed: int | None = None


@app.post("/v1/models/{name}/predict")
@app.post("/v1/models/{name}/uncertainty")
async def constant(name: str, body: Body) -> dict[str, Any]:
    return {"model": name, "predictions": [[0.0]]}


@app.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}
