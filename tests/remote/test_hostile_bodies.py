"""Bodies built to break a JSON parser get a 4xx with a well-formed error body, never a 500."""

from __future__ import annotations

import httpx
import pytest

from aifactory._embedded import EmbeddedFactory
from aifactory.server import factory_app
from tests.helpers import fast_config

pytestmark = pytest.mark.anyio

HOSTILE = [
    pytest.param(b"[" * 100_000 + b"]" * 100_000, 400, id="nested-arrays"),
    pytest.param(b'{"username":' * 20_000 + b"1" + b"}" * 20_000, 400, id="nested-objects"),
    pytest.param(b"\xff\xfe\x00\x01", 400, id="not-utf8"),
    pytest.param(b'["an", "array"]', 400, id="not-an-object"),
    pytest.param(b'{"username": "a", "password": "' + b"x" * 2_000_000 + b'"}', 413, id="huge"),
]


@pytest.mark.parametrize(("body", "status"), HOSTILE)
async def test_hostile_json_bodies_are_refused_cleanly(body: bytes, status: int) -> None:
    async with EmbeddedFactory(fast_config()) as runtime:
        transport = httpx.ASGITransport(app=factory_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://f.test") as client:
            for path in ("/api/auth/login", "/api/kam/requests"):
                reply = await client.post(
                    path, content=body, headers={"content-type": "application/json"}
                )
                # The login route reads the body first; others may refuse the missing
                # session before looking at it. Either way: a 4xx with the error shape.
                assert 400 <= reply.status_code < 500, (path, reply.status_code)
                error = reply.json()["error"]
                assert set(error) == {"code", "message", "details"}
                if path == "/api/auth/login":
                    assert reply.status_code == status
