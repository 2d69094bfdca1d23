"""A user's script, type-checked with `mypy --strict` by `test_typing.py` (never run).

Each `assert_type` pins what a call returns: the sync facade and the async client give the
same domain types, and nothing is `Any`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import assert_type

import aifactory
from aifactory import (
    ApiKeyInfo,
    AsyncFactory,
    AsyncSession,
    AuditEvent,
    Client,
    Deliverable,
    Execution,
    ExecutionEvent,
    ExecutionOwner,
    Factory,
    Notification,
    Recommendation,
    Request,
    Session,
    StageRun,
    Template,
    User,
)


def sync_script() -> None:
    factory = aifactory.embedded(home="./.aifactory")
    assert_type(factory, Factory)
    admin = factory.login("admin@example.com", "secret", login_type="admin")
    assert_type(admin, Session)
    assert_type(admin.user, User)
    assert_type(admin.clients.create("Acme", "standard", Decimal(50)), Client)
    assert_type(admin.clients.list(), list[Client])
    assert_type(admin.users.create("ana@example.com", "pw", client_id="c"), User)
    assert_type(admin.api_keys.create("ci"), ApiKeyInfo)
    request = admin.requests.create("Market analysis")
    assert_type(request, Request)
    assert_type(admin.requests.assign_template(request.id, "quick_research"), Request)
    assert_type(admin.templates.list(), list[Template])
    assert_type(admin.templates.recommend(request.id), list[Recommendation])
    execution = admin.requests.execute(request.id)
    assert_type(execution, Execution)
    assert_type(admin.executions.wait(execution.id), Execution)
    assert_type(admin.executions.stages(execution.id), list[StageRun])
    assert_type(admin.executions.events(execution.id), Iterator[ExecutionEvent])
    assert_type(admin.executions.owners(), list[ExecutionOwner])
    assert_type(admin.deliverables.list(request.id), list[Deliverable])
    assert_type(admin.deliverables.download("d"), bytes)
    assert_type(admin.notifications.list(), list[Notification])
    assert_type(admin.notifications.mark_read("n"), None)
    assert_type(admin.audit.list(), list[AuditEvent])
    assert_type(aifactory.connect("http://127.0.0.1:8000", api_key="k").session(), Session)


async def async_script() -> None:
    async with AsyncFactory.embedded(home="./.aifactory") as factory:
        admin = await factory.login("admin@example.com", "secret", login_type="admin")
        assert_type(admin, AsyncSession)
        assert_type(await admin.clients.create("Acme", "standard", 50), Client)
        request = await admin.requests.create("Market analysis")
        assert_type(request, Request)
        execution = await admin.requests.execute(request.id)
        assert_type(execution, Execution)
        assert_type(await admin.executions.wait(execution.id), Execution)
        assert_type(admin.executions.events(execution.id), AsyncIterator[ExecutionEvent])
        assert_type(await admin.deliverables.list(request.id), list[Deliverable])
        assert_type(await admin.templates.recommend(request.id), list[Recommendation])
