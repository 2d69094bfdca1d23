"""Hostile input at the boundary: refused with a 4xx and the JSON error body over a real
server, and with the same `BadInputError` through the Python API, embedded and remote; a
500 (a bug) keeps the keep-alive connection and leaves its traceback in the log only."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest

from aifactory import AsyncFactory, BadInputError
from aifactory._embedded import EmbeddedFactory
from aifactory.server import serving
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, fast_config
from tests.servers import UvicornThread

SURROGATE = '"\\ud800"'  # a lone surrogate, as JSON escapes it
LONG_INT = "9" * 5000  # beyond Python's int parsing limit (4300 digits)


class Live:
    """A factory on a real uvicorn server, with Acme, its user Ana and one request."""

    def __init__(self, url: str, admin: str, ana: str, client_id: str, request_id: str) -> None:
        self.url, self.admin, self.ana = url, admin, ana
        self.client_id, self.request_id = client_id, request_id


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    runtime = EmbeddedFactory(fast_config())
    password = anyio.run(runtime.accounts.bootstrap_admin, ADMIN)
    with UvicornThread(serving(runtime)) as server, httpx.Client(base_url=server.url) as http:

        def login(username: str, secret: str, kind: str) -> str:
            body = {"username": username, "password": secret, "loginType": kind}
            reply = http.post("/api/auth/login", json=body)
            assert reply.status_code == 200, reply.text
            return str(reply.json()["sessionToken"])

        admin = login(ADMIN, password, "admin")
        staff = {"x-bitware-session-token": admin}
        body = {"name": "Acme", "tier": "enterprise", "monthly_budget_usd": "50"}
        client_id = http.post("/api/kam/clients", json=body, headers=staff).json()["id"]
        user = {"email": ANA, "password": ANA_PASSWORD, "role": "client", "client_id": client_id}
        assert http.post("/api/kam/users", json=user, headers=staff).status_code == 200
        ana = login(ANA, ANA_PASSWORD, "client")
        created = http.post(
            "/api/kam/requests",
            json={"title": "Market analysis"},
            headers={"x-bitware-session-token": ana},
        )
        yield Live(server.url, admin, ana, client_id, created.json()["id"])


def _error(reply: httpx.Response) -> dict[str, Any]:
    assert 400 <= reply.status_code < 500, (reply.status_code, reply.text)
    error = reply.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["details"], dict)
    return dict(error)


# (method, path, raw JSON body with {} where the hostile value goes, who sends it)
TEXT_FIELDS = [
    ("POST", "/api/auth/login", '{"username": {}, "password": "p-123456789012"}', None),
    ("POST", "/api/auth/login", '{"username": "a@b.example", "password": {}}', None),
    ("POST", "/api/auth/login", '{"username": "a@b.c", "password": "p", "loginType": {}}', None),
    ("POST", "/api/kam/clients", '{"name": {}, "tier": "basic", "monthly_budget_usd": 1}', "admin"),
    ("POST", "/api/kam/clients", '{"name": "N", "tier": {}, "monthly_budget_usd": 1}', "admin"),
    ("POST", "/api/kam/users", '{"email": {}, "password": "p-123456789012"}', "admin"),
    ("POST", "/api/kam/users", '{"email": "x@y.example", "password": {}}', "admin"),
    ("POST", "/api/kam/requests", '{"title": {}}', "ana"),
    ("POST", "/api/kam/requests", '{"title": "t", "description": {}}', "ana"),
    ("POST", "/api/kam/requests", '{"title": "t", "category": {}}', "ana"),
    ("POST", "/api/kam/api-keys", '{"name": {}}', "ana"),
    ("PUT", "/api/kam/requests/{request}", '{"template_name": {}}', "admin"),
    (
        "PUT",
        "/api/kam/requests/{request}",
        '{"template_name": "t", "parameters": {"k": {}}}',
        "admin",
    ),
    ("PATCH", "/api/kam/clients/{client}", '{"name": {}}', "admin"),
    ("POST", "/api/auth/change-password", '{"old_password": {}, "new_password": "x"}', "ana"),
]


def _send(live: Live, http: httpx.Client, method: str, path: str, body: str, who: Any) -> Any:
    path = path.replace("{request}", live.request_id).replace("{client}", live.client_id)
    headers = {"content-type": "application/json"}
    if who is not None:
        headers["x-bitware-session-token"] = live.admin if who == "admin" else live.ana
    return http.request(method, path, content=body.encode(), headers=headers)


@pytest.mark.parametrize(("method", "path", "body", "who"), TEXT_FIELDS)
def test_invalid_unicode_in_any_text_field_is_a_400(
    live: Live, method: str, path: str, body: str, who: Any
) -> None:
    with httpx.Client(base_url=live.url) as http:
        reply = _send(live, http, method, path, body.replace("{}", SURROGATE, 1), who)
        error = _error(reply)
        assert reply.status_code == 400
        assert "not valid Unicode" in error["message"], error


NUMBERS = [
    # integers too long to parse, in a body
    ("POST", "/api/kam/clients", '{"name": "N", "tier": "basic", "monthly_budget_usd": %s}'),
    ("POST", "/api/kam/recommend-template", '{"request_id": "{request}", "limit": %s}'),
    ("PUT", "/api/kam/requests/{request}", '{"template_name": "t", "parameters": {"n": %s}}'),
]


@pytest.mark.parametrize(("method", "path", "body"), NUMBERS)
def test_integers_too_long_to_parse_are_a_400(
    live: Live, method: str, path: str, body: str
) -> None:
    with httpx.Client(base_url=live.url) as http:
        reply = _send(live, http, method, path, body % LONG_INT, "admin")
        assert reply.status_code == 400
        assert "malformed JSON" in _error(reply)["message"]


@pytest.mark.parametrize(
    "query",
    [
        f"/api/kam/audit?limit={LONG_INT}",  # too long to parse
        f"/api/kam/audit?limit={2**63}",  # beyond 64 bits
        f"/api/kam/audit?limit=-{2**63 + 1}",
        f"/api/kam/webhooks/deliveries?limit={2**64}",
        f"/api/pipelines/executions/x/events?after={2**70}",
        "/api/pipelines/executions/x/events?wait_s=nan",
        "/api/pipelines/executions/x/events?wait_s=inf",
        "/api/kam/audit?limit=%C2%B2",  # a digit to str.isdigit, not to int()
    ],
)
def test_query_integers_out_of_range_are_a_400(live: Live, query: str) -> None:
    with httpx.Client(base_url=live.url) as http:
        reply = http.get(query, headers={"x-bitware-session-token": live.admin})
        assert reply.status_code == 400, reply.text
        assert _error(reply)["details"]["field"] in ("limit", "after", "wait_s")


BUDGETS = ['"1e999999999"', "1e308", '"NaN"', '"Infinity"', '"-1"', '"0.001"', '"1000000000.01"']


@pytest.mark.parametrize("budget", BUDGETS)
def test_budgets_out_of_range_are_refused_at_create_and_update(live: Live, budget: str) -> None:
    with httpx.Client(base_url=live.url) as http:
        headers = {"x-bitware-session-token": live.admin, "content-type": "application/json"}
        create = f'{{"name": "Huge", "tier": "basic", "monthly_budget_usd": {budget}}}'
        reply = http.post("/api/kam/clients", content=create, headers=headers)
        assert _error(reply)["details"]["field"] == "monthly_budget_usd"
        update = f'{{"monthly_budget_usd": {budget}}}'
        reply = http.patch(f"/api/kam/clients/{live.client_id}", content=update, headers=headers)
        assert _error(reply)["details"]["field"] == "monthly_budget_usd"
        # The client stays usable: recommendation and listing still answer.
        body = {"request_id": live.request_id}
        assert http.post("/api/kam/recommend-template", json=body, headers=headers).is_success
        assert http.get("/api/kam/clients", headers=headers).is_success


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "t", "bogus": 1}, "bogus"),  # unknown field
        ({"title": 5}, "title"),  # wrong type
        ({"title": "t", "urgency": ["high"]}, "urgency"),
        ({"title": "x" * 100_001}, "title"),  # oversize string
    ],
)
def test_unknown_fields_wrong_types_and_oversize_text_are_a_400(
    live: Live, body: dict[str, Any], field: str
) -> None:
    with httpx.Client(base_url=live.url) as http:
        headers = {"x-bitware-session-token": live.ana}
        reply = http.post("/api/kam/requests", json=body, headers=headers)
        assert reply.status_code == 400
        assert _error(reply)["details"]["field"] == field


def test_oversize_and_too_deep_lists_are_a_400(live: Live) -> None:
    with httpx.Client(base_url=live.url) as http:
        headers = {"x-bitware-session-token": live.admin}
        path = f"/api/kam/requests/{live.request_id}"
        deep: Any = 1
        for _ in range(40):
            deep = [deep]
        for parameters in ({"keywords": list(range(1001))}, {"deep": deep}):
            body = {"template_name": "market_research_pipeline", "parameters": parameters}
            reply = http.put(path, json=body, headers=headers)
            assert reply.status_code == 400
            assert _error(reply)["details"]["field"] == "parameters"


# -- the Python API refuses the same values with the same errors ---------------------------

PYTHON_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("clients.create", {"name": "\ud800", "tier": "basic", "monthly_budget_usd": 1}),
    ("clients.create", {"name": "N", "tier": "basic", "monthly_budget_usd": "1e999999999"}),
    ("clients.create", {"name": "N", "tier": "basic", "monthly_budget_usd": Decimal("1e400")}),
    ("clients.create", {"name": "N", "tier": "basic", "monthly_budget_usd": float("nan")}),
    ("clients.create", {"name": "N", "tier": "basic", "monthly_budget_usd": float("inf")}),
    ("clients.create", {"name": "N", "tier": "basic", "monthly_budget_usd": 10**30}),
    ("clients.create", {"name": "N", "tier": "basic", "monthly_budget_usd": "0.005"}),
    ("clients.create", {"name": "x" * 100_001, "tier": "basic", "monthly_budget_usd": 1}),
    ("audit.list", {"limit": 2**64}),
    ("audit.list", {"action": "\udfff"}),
    ("templates.recommend", {"request_id": "r", "limit": 2**63}),
    ("requests.get", {"request_id": "\ud800"}),
    ("executions.events", {"execution_id": "x", "wait_s": float("inf")}),
    (
        "requests.assign_template",
        {"request_id": "r", "template_name": "t", "parameters": {"n": 2**64}},
    ),
    (
        "requests.assign_template",
        {"request_id": "r", "template_name": "t", "parameters": {"\ud800": 1}},
    ),
    (
        "requests.assign_template",
        {"request_id": "r", "template_name": "t", "parameters": {"l": [0] * 1001}},
    ),
    (
        "requests.assign_template",
        {"request_id": "r", "template_name": "t", "parameters": {"f": 1e999}},
    ),
]


@pytest.mark.anyio
async def test_the_python_api_refuses_the_same_values_embedded_and_remote(live: Live) -> None:
    async with AsyncFactory.connect(live.url, token=live.admin) as remote_factory:
        remote = remote_factory._transport
        async with EmbeddedFactory(fast_config()) as runtime:
            password = await runtime.accounts.bootstrap_admin(ADMIN)
            token = (await runtime.accounts.login(ADMIN, password, "admin")).session_token
            embedded = AsyncFactory(_in_process(runtime))._transport
            for name, arguments in PYTHON_VALUES:
                refusals = []
                for transport, key in ((embedded, token), (remote, live.admin)):
                    with pytest.raises(BadInputError) as refused:
                        await transport.call(name, key, **dict(arguments))
                    refusals.append((refused.value.code, refused.value.message))
                    refusals.append(refused.value.details)
                assert refusals[:2] == refusals[2:], (name, refusals)
            for transport in (embedded, remote):
                for username, secret in (("\ud800", "p-123456789012"), ("a@b.c", "\udc00" * 12)):
                    with pytest.raises(BadInputError, match="not valid Unicode"):
                        await transport.login(username, secret, "client")


def _in_process(runtime: EmbeddedFactory) -> Any:
    from aifactory.transports.factory import InProcessFactoryTransport

    return InProcessFactoryTransport(runtime)


# -- a 500 (a bug) ---------------------------------------------------------------------------


def test_a_500_keeps_the_connection_and_logs_the_traceback_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = EmbeddedFactory(fast_config())
    password = anyio.run(runtime.accounts.bootstrap_admin, ADMIN)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("canary-bug-7f3a in a handler")

    runtime.handlers["clients.list"] = broken
    with UvicornThread(serving(runtime)) as server, httpx.Client(base_url=server.url) as http:
        body = {"username": ADMIN, "password": password, "loginType": "admin"}
        headers = {
            "x-bitware-session-token": http.post("/api/auth/login", json=body).json()[
                "sessionToken"
            ]
        }
        ports = []

        def local_port(reply: httpx.Response) -> int:
            stream = reply.extensions["network_stream"]
            return int(stream.get_extra_info("socket").getsockname()[1])

        with caplog.at_level(logging.ERROR, logger="aifactory.server"):
            for _ in range(3):
                reply = http.get("/api/kam/clients", headers=headers)
                assert reply.status_code == 500
                assert reply.json() == {
                    "error": {"code": "internal_error", "message": "internal error", "details": {}}
                }
                assert "canary-bug" not in reply.text
                assert reply.headers.get("connection") != "close"
                ports.append(local_port(reply))
                good = http.get("/api/auth/me", headers=headers)
                assert good.status_code == 200
                ports.append(local_port(good))
        assert len(set(ports)) == 1, ports  # one keep-alive connection throughout
        logged = "\n".join(r.getMessage() + str(r.exc_info) for r in caplog.records)
        assert "canary-bug-7f3a" in logged  # the operator's log has the traceback
        assert any(r.exc_info for r in caplog.records)
