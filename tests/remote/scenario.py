"""The embedded-flow scenario, written once, run against any `AsyncFactory`."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from aifactory import (
    AsyncFactory,
    AuthenticationError,
    NotFoundError,
    ParameterError,
    PermissionDeniedError,
)
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, BOB, BOB_PASSWORD


async def run_scenario(factory: AsyncFactory, admin_password: str) -> dict[str, Any]:
    """Login to deliverable plus the refusals; returns what must be equal everywhere."""
    admin = await factory.login(ADMIN, admin_password, login_type="admin")
    acme = await admin.clients.create(name="Acme", tier="standard", monthly_budget_usd="50")
    globex = await admin.clients.create(name="Globex", tier="basic", monthly_budget_usd=5)
    await admin.users.create(email=ANA, password=ANA_PASSWORD, role="client", client_id=acme.id)
    await admin.users.create(email=BOB, password=BOB_PASSWORD, client_id=globex.id)
    with pytest.raises(AuthenticationError):
        await factory.login(ANA, "wrong-password-here")
    ana = await factory.login(ANA, ANA_PASSWORD)
    bob = await factory.login(BOB, BOB_PASSWORD)

    request = await ana.requests.create(
        title="Market analysis for AI tools",
        description="Segments, vendors and pricing of AI tools; adoption trends.",
        urgency="high",
        category="research",
    )
    templates = [t.name for t in await admin.templates.list(tier="standard")]
    [best, *_] = await admin.templates.recommend(request.id)
    with pytest.raises(PermissionDeniedError):
        await ana.requests.assign_template(request.id, "quick_research")
    with pytest.raises(ParameterError):
        await admin.requests.assign_template(request.id, "quick_research", {"granularity": 9})
    await admin.requests.assign_template(request.id, "quick_research", {"granularity": 3})
    execution = await admin.requests.execute(request.id)
    events = [e.kind async for e in admin.executions.events(execution.id)]
    final = await admin.executions.wait(execution.id, timeout_s=60)
    stages = await ana.executions.stages(execution.id)
    metrics = await admin.executions.metrics(execution.id)
    [deliverable] = await ana.deliverables.list(request.id)
    report = await ana.deliverables.download(deliverable.id)
    with pytest.raises(NotFoundError):
        await bob.requests.get(request.id)
    with pytest.raises(NotFoundError):
        await bob.deliverables.download(deliverable.id)

    key = await factory.session((await ana.api_keys.create(name="ci")).key or "")
    assert [r.id for r in await key.requests.list()] == [request.id]
    notes = [n.kind for n in await key.notifications.list()]
    await ana.logout()
    with pytest.raises(AuthenticationError):
        await ana.requests.list()
    return {
        "templates": sorted(templates),
        "recommended": best.template,
        "status": final.status.value,
        "events": events,
        "stages": [(s.stage_id, s.status.value, s.attempt, s.summary["method"]) for s in stages],
        "metrics_stages": [m["stage_id"] for m in metrics["stages"]],
        "report_sha256": hashlib.sha256(report).hexdigest(),
        "report_size": deliverable.size_bytes,
        "cost": str(final.cost.total_usd),
        "notifications": notes,
        "audit": sorted({e.action for e in await admin.audit.list(limit=500)}),
    }
