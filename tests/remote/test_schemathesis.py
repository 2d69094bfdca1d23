"""Schemathesis against the generated OpenAPI document, on a real server on 127.0.0.1:
whatever it sends, no 5xx, and every error body is `{"error": {"code", "message", "details"}}`.
The number of examples is bounded (`AIFACTORY_SCHEMATHESIS_EXAMPLES`, default 10 per
operation) to keep CI short."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from aifactory._embedded import EmbeddedFactory
from aifactory.server import factory_app, serving
from tests.helpers import ADMIN, fast_config
from tests.servers import UvicornThread

EXAMPLES = int(os.environ.get("AIFACTORY_SCHEMATHESIS_EXAMPLES", "10"))
schema = schemathesis.openapi.from_dict(factory_app(EmbeddedFactory(fast_config())).state.openapi)


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[str, dict[str, str]]]:
    import httpx

    runtime = EmbeddedFactory(fast_config())
    password = anyio.run(runtime.accounts.bootstrap_admin, ADMIN)
    with UvicornThread(serving(runtime)) as server:
        body = {"username": ADMIN, "password": password, "loginType": "admin"}
        token = httpx.post(server.url + "/api/auth/login", json=body).json()["sessionToken"]
        yield server.url, {"x-bitware-session-token": token}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_well_formed_error_bodies(
    case: Any, live: tuple[str, dict[str, str]]
) -> None:
    url, headers = live
    if case.operation.definition.raw.get("operationId") == "auth.logout":
        return  # would end the session the other cases use
    response = case.call(base_url=url, headers=headers)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "details"}
        assert isinstance(error["code"], str)
        assert isinstance(error["message"], str)
        assert isinstance(error["details"], dict)
