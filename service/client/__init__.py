"""A Python client for dropserve's JSON API, sync (`Client`) and asyncio (`AsyncClient`).

It needs only httpx and the standard library, so importing it is cheap and it runs where torch
does not. Results are frozen dataclasses that keep the raw JSON (`raw`); every failure is an
`ApiError` with the status, the server's message and the request id::

    from service.client import Client

    with Client("http://127.0.0.1:8000") as client:
        result = client.uncertainty("concrete", [[540, 0, 0, 162, 2.5, 1040, 676, 28]], seed=7)
        print(result.regression[0].mean)
"""

from service.client._async import AsyncClient
from service.client._errors import ApiError
from service.client._results import (
    ClassUncertainty,
    ModelDetail,
    ModelSummary,
    PredictResult,
    RegressionUncertainty,
    UncertaintyResult,
)
from service.client._sync import DEFAULT_URL, Client

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "AsyncClient",
    "ClassUncertainty",
    "Client",
    "ModelDetail",
    "ModelSummary",
    "PredictResult",
    "RegressionUncertainty",
    "UncertaintyResult",
]
