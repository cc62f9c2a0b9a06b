"""The Python client against a real `dropserve serve`, sync and async, over real sockets."""

from __future__ import annotations

import asyncio

import pytest

from service.client import ApiError, AsyncClient, Client
from tests.e2e.conftest import Server

CONCRETE_ROW = [540, 0, 0, 162, 2.5, 1040, 676, 28]


def test_client_against_a_real_server(server: Server) -> None:
    with Client(server.base_url, timeout=30) as client:
        assert client.ready()
        assert {m.name for m in client.models()} >= {"concrete", "digits"}
        digits = client.model("digits")
        assert digits.classes == [str(label) for label in range(10)]
        labelled = client.predict("digits", digits.examples[:2])
        assert labelled.labels is not None
        assert len(labelled.labels) == 2
        first = client.uncertainty("concrete", [CONCRETE_ROW], samples=200, seed=7)
        again = client.uncertainty("concrete", [CONCRETE_ROW], samples=200, seed=7)
        assert first.rows == again.rows
        with pytest.raises(ApiError) as refused:
            client.predict("concrete", [CONCRETE_ROW[:4]])
        assert refused.value.status == 422
        assert "expects 8 features" in refused.value.message
        assert refused.value.request_id


def test_async_client_against_a_real_server(server: Server) -> None:
    async def calls() -> list[float]:
        async with AsyncClient(server.base_url) as client:
            answers = await asyncio.gather(
                *(client.predict("concrete", [CONCRETE_ROW]) for _ in range(4))
            )
        return [answer.values[0][0] for answer in answers]

    values = asyncio.run(calls())
    assert len(set(values)) == 1


def test_a_server_that_is_not_there() -> None:
    with Client("http://127.0.0.1:9", timeout=2) as client, pytest.raises(ApiError) as failed:
        client.models()
    assert failed.value.status is None
    assert "cannot reach http://127.0.0.1:9/v1/models" in failed.value.message
