"""The operation table is the whole contract: handlers, reply types and argument checks.

Every operation names its handler; the handler's return type is the table's reply type; and
the two transports bind arguments with the same code, so a wrong argument is refused with
the same `BadInputError` embedded and over HTTP (a walk of the whole table).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from aifactory import AsyncFactory, BadInputError
from aifactory._embedded import EmbeddedFactory
from aifactory.api import OPERATIONS
from aifactory.api.arguments import Param
from aifactory.server import factory_app
from aifactory.transports.factory import FactoryTransport, InProcessFactoryTransport
from tests.helpers import ADMIN, fast_config

pytestmark = pytest.mark.anyio

SPECIAL = {"auth.login", "auth.logout"}  # no principal, or the session itself


@pytest.fixture
async def runtime() -> AsyncIterator[EmbeddedFactory]:
    async with EmbeddedFactory(fast_config()) as factory:
        yield factory


def _returned(handler: Any) -> Any:
    hint = typing.get_type_hints(handler)["return"]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = typing.get_args(hint)
    return hint


async def test_every_handler_exists_and_returns_the_reply_type(
    runtime: EmbeddedFactory,
) -> None:
    for op in OPERATIONS:
        handler = runtime.handlers[op.name]
        assert inspect.ismethod(handler), op.name
        if op.name in SPECIAL:
            continue
        returned = _returned(handler)
        expected = type(None) if op.reply is None else op.reply
        assert returned == expected, f"{op.name}: handler returns {returned}, table says {expected}"


def _wrong_values(op_method: str, param: Param) -> list[Any]:
    """Values of the wrong type for `param` that are wrong in both encodings (a query
    string can only carry text, so a text parameter has none there)."""
    members = set(typing.get_args(param.annotation) or (param.annotation,)) - {type(None)}
    origins = {typing.get_origin(m) or m for m in members}
    if origins <= {int}:
        return ["abc", 1.5] if op_method != "GET" else ["abc"]
    if origins <= {bool}:
        return ["maybe"]
    if op_method == "GET" or str in origins or Any in origins:
        return []
    return [[1, 2]] if dict in origins else [{"a": 1}]


async def _refusal(
    transport: FactoryTransport, token: str, operation: str, args: dict[str, Any]
) -> Any:
    with pytest.raises(BadInputError) as refused:
        await transport.call(operation, token, **args)
    return refused.value.code, refused.value.message, refused.value.details


async def test_both_transports_refuse_the_same_wrong_arguments(runtime: EmbeddedFactory) -> None:
    password = await runtime.accounts.bootstrap_admin(ADMIN)
    token = (await runtime.accounts.login(ADMIN, password, "admin")).session_token
    embedded = InProcessFactoryTransport(runtime)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=factory_app(runtime)))
    remote = AsyncFactory.connect("http://factory.test", client=client)._transport
    checked = 0
    try:
        for op in OPERATIONS:
            if op.name in SPECIAL:
                continue
            params = runtime.params[op.name]
            path = {name: "x" for name in op.path_params}
            cases: list[dict[str, Any]] = [{**path, "bogus": 1}]
            for param in params:
                if param.name in op.path_params:
                    continue
                cases += [{**path, param.name: v} for v in _wrong_values(op.method, param)]
            for args in cases:
                here = await _refusal(embedded, token, op.name, args)
                there = await _refusal(remote, token, op.name, args)
                assert here == there, (op.name, args)
                checked += 1
    finally:
        await client.aclose()
    assert checked > len(OPERATIONS)  # every operation, and typed parameters besides
