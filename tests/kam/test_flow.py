"""One request from login to deliverable, embedded, and every way it may be refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from aifactory import (
    AsyncFactory,
    AuthenticationError,
    BadInputError,
    ConflictError,
    ManualClock,
    NotFoundError,
    ParameterError,
    PermissionDeniedError,
    QuotaExceededError,
    SessionExpiredError,
    WorkerError,
)
from aifactory.models import ExecutionStatus, RequestStatus, StageStatus
from aifactory.workers import ContentGranulator, ReportBuilder
from tests.helpers import (
    ADMIN,
    ANA,
    ANA_PASSWORD,
    BOB,
    BOB_PASSWORD,
    People,
    fast_config,
    setup_people,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def factory() -> AsyncIterator[AsyncFactory]:
    async with AsyncFactory.embedded(config=fast_config()) as f:
        yield f


@pytest.fixture
async def people(factory: AsyncFactory) -> People:
    return await setup_people(factory)


async def _submit(people: People, template: str = "quick_research", **params: object) -> str:
    request = await people.ana.requests.create(
        title="Market analysis for AI tools",
        description="Need a comprehensive analysis of pricing, vendors and adoption.",
        urgency="high",
        category="research",
    )
    await people.admin.requests.assign_template(request.id, template, parameters=dict(params))
    return request.id


async def test_request_travels_from_login_to_deliverable(
    factory: AsyncFactory, people: People
) -> None:
    admin, ana = people.admin, people.ana
    names = {t.name for t in await admin.templates.list(tier="standard")}
    assert {"quick_research", "educational_course_basic", "comprehensive_report_pipeline"} <= names
    request_id = await _submit(people, granularity=3)
    assert (await ana.requests.get(request_id)).status is RequestStatus.TEMPLATE_ASSIGNED

    execution = await admin.requests.execute(request_id)
    kinds = [e.kind for e in [event async for event in admin.executions.events(execution.id)]]
    assert kinds[0] == "execution.started"
    assert kinds[-1] == "execution.completed"
    assert kinds.count("stage.succeeded") == 2
    final = await admin.executions.wait(execution.id)
    assert final.status is ExecutionStatus.COMPLETED
    assert final.progress == 1.0

    stages = await admin.executions.stages(execution.id)
    assert [(s.stage_id, s.status, s.attempt) for s in stages] == [
        ("outline", StageStatus.SUCCEEDED, 1),
        ("report", StageStatus.SUCCEEDED, 1),
    ]
    assert all(s.summary["method"].startswith("non-llm:") for s in stages)

    request = await ana.requests.get(request_id)
    assert request.status is RequestStatus.COMPLETED
    assert request.execution_id == execution.id
    [deliverable] = await ana.deliverables.list(request_id)
    report = await ana.deliverables.download(deliverable.id)
    assert report.startswith(b"# ")
    assert b"Market analysis for AI tools" in report
    assert len(report) == deliverable.size_bytes
    assert deliverable.media_type.startswith("text/markdown")

    # The cost is charged once against Acme's month.
    client = await admin.clients.get(people.client_id)
    assert final.cost.total_usd > 0
    assert client.used_this_month_usd == final.cost.total_usd
    assert client.remaining_budget_usd == Decimal(50) - final.cost.total_usd

    [note] = await ana.notifications.list(unread_only=True)
    assert note.kind == "request.completed"
    assert note.data["request_id"] == request_id
    await ana.notifications.mark_read(note.id)
    assert await ana.notifications.list(unread_only=True) == []

    actions = [e.action for e in await admin.audit.list(limit=1000)]
    for action in (
        "admin.bootstrap",
        "auth.login",
        "client.create",
        "user.create",
        "request.create",
        "request.assign_template",
        "request.execute",
        "request.settle",
        "deliverable.download",
    ):
        assert action in actions


async def test_educational_course_runs_too(people: People) -> None:
    request_id = await _submit(people, "educational_course_basic", target_audience="nurses")
    execution = await people.admin.requests.execute(request_id)
    assert (await people.admin.executions.wait(execution.id)).status is ExecutionStatus.COMPLETED
    [deliverable] = await people.ana.deliverables.list(request_id)
    report = await people.ana.deliverables.download(deliverable.id)
    assert b"nurses" in report
    assert b"Module" in report


async def test_bad_login_is_refused_and_audited(factory: AsyncFactory, people: People) -> None:
    with pytest.raises(AuthenticationError) as wrong:
        await factory.login(ANA, "not-the-password")
    with pytest.raises(AuthenticationError) as unknown:
        await factory.login("nobody@acme.example", "whatever-password")
    assert wrong.value.message == unknown.value.message  # no user enumeration
    with pytest.raises(AuthenticationError):
        await factory.login(ANA, ANA_PASSWORD, login_type="admin")  # a client is no admin
    with pytest.raises(AuthenticationError):
        await factory.login(ADMIN, people.admin_password, login_type="client")
    with pytest.raises(BadInputError):
        await factory.login(ANA, ANA_PASSWORD, login_type="root")
    denied = [
        e for e in await people.admin.audit.list(action="auth.login") if e.outcome == "denied"
    ]
    assert len(denied) == 4
    assert {e.details["reason"] for e in denied} >= {"wrong password", "unknown user"}


async def test_sessions_expire_after_24_hours_and_logout_revokes(
    factory: AsyncFactory, people: People
) -> None:
    clock = factory._runtime.config.clock  # type: ignore[union-attr]
    assert isinstance(clock, ManualClock)
    clock.advance(24 * 3600 - 1)
    await people.ana.requests.list()
    clock.advance(1)
    with pytest.raises(SessionExpiredError):
        await people.ana.requests.list()
    fresh = await factory.login(ANA, ANA_PASSWORD)
    assert len(fresh.token) >= 40  # 256 random bits, URL-safe
    await fresh.logout()
    with pytest.raises(AuthenticationError):
        await fresh.requests.list()
    with pytest.raises(AuthenticationError):
        await factory.session("sess_forged-token")


async def test_client_user_cannot_call_admin_operations(people: People) -> None:
    ana = people.ana
    with pytest.raises(PermissionDeniedError):
        await ana.clients.create(name="Evil", tier="enterprise", monthly_budget_usd=10**6)
    with pytest.raises(PermissionDeniedError):
        await ana.users.create(
            email="x@acme.example", password="long-enough-pass", client_id=people.client_id
        )
    request_id = (await ana.requests.create(title="Mine")).id
    with pytest.raises(PermissionDeniedError):
        await ana.requests.assign_template(request_id, "quick_research")
    with pytest.raises(PermissionDeniedError):
        await ana.requests.execute(request_id)
    with pytest.raises(PermissionDeniedError):
        await ana.audit.list()
    # Only admins make staff users.
    await people.admin.users.create(
        email="am@factory.example", password="manager-password", role="account_manager"
    )


async def test_clients_see_only_their_own_objects(factory: AsyncFactory, people: People) -> None:
    admin = people.admin
    globex = await admin.clients.create(name="Globex", tier="basic", monthly_budget_usd=5)
    await admin.users.create(email=BOB, password=BOB_PASSWORD, client_id=globex.id)
    bob = await factory.login(BOB, BOB_PASSWORD)
    request_id = await _submit(people)
    execution = await admin.requests.execute(request_id)
    await admin.executions.wait(execution.id)
    [deliverable] = await people.ana.deliverables.list(request_id)

    assert await bob.requests.list() == []
    for attempt in (
        bob.requests.get(request_id),
        bob.deliverables.list(request_id),
        bob.deliverables.get(deliverable.id),
        bob.deliverables.download(deliverable.id),
        bob.executions.get(execution.id),
        bob.clients.get(people.client_id),
    ):
        with pytest.raises(NotFoundError):
            await attempt
    assert await bob.notifications.list() == []
    with pytest.raises(NotFoundError):
        await bob.notifications.mark_read((await people.ana.notifications.list())[0].id)
    # Bob's templates are those of his basic tier, whatever he asks for.
    names = {t.name for t in await bob.templates.list(tier="enterprise")}
    assert "comprehensive_report_pipeline" not in names
    assert "quick_research" in names


async def test_unknown_template_and_bad_parameters_are_clear_errors(people: People) -> None:
    request_id = (await people.ana.requests.create(title="Course on welding")).id
    assign = people.admin.requests.assign_template
    with pytest.raises(NotFoundError, match="no template 'nonexistent'"):
        await assign(request_id, "nonexistent")
    with pytest.raises(ParameterError) as bad:
        await assign(
            request_id, "quick_research", {"granularity": 9, "colour": "red", "target_audience": 3}
        )
    problems = {e["parameter"]: e["error"] for e in bad.value.details["errors"]}
    assert problems == {
        "colour": "unknown parameter",
        "granularity": "must be at most 5",
        "target_audience": "must be a string",
    }
    with pytest.raises(ParameterError, match="must be an integer"):
        await assign(request_id, "quick_research", {"granularity": True})
    assert (await people.ana.requests.get(request_id)).status is RequestStatus.PENDING


async def test_tier_limits_templates_and_editable_parameters(factory: AsyncFactory) -> None:
    people = await setup_people(factory, tier="basic", budget=5)
    request_id = (await people.ana.requests.create(title="Quarterly outlook")).id
    with pytest.raises(BadInputError, match="not available on the basic tier"):
        await people.admin.requests.assign_template(request_id, "comprehensive_report_pipeline")
    with pytest.raises(ParameterError, match="not editable on the basic tier"):
        await people.admin.requests.assign_template(
            request_id, "quick_research", {"granularity": 4}
        )
    # Basic allows two users.
    await people.admin.users.create(
        email="second@acme.example", password="second-password", client_id=people.client_id
    )
    with pytest.raises(QuotaExceededError):
        await people.admin.users.create(
            email="third@acme.example", password="third-password", client_id=people.client_id
        )


async def test_executing_twice_or_unassigned_is_a_conflict(people: People) -> None:
    pending = (await people.ana.requests.create(title="Not yet assigned")).id
    with pytest.raises(ConflictError, match="assign a template first"):
        await people.admin.requests.execute(pending)
    request_id = await _submit(people)
    execution = await people.admin.requests.execute(request_id)
    with pytest.raises(ConflictError, match="cannot execute again"):
        await people.admin.requests.execute(request_id)
    await people.admin.executions.wait(execution.id)
    with pytest.raises(ConflictError):
        await people.admin.requests.execute(request_id)
    with pytest.raises(ConflictError, match="can no longer change"):
        await people.admin.requests.assign_template(request_id, "quick_research")
    executions = [r.execution_id for r in await people.admin.requests.list() if r.execution_id]
    assert executions == [execution.id]


async def test_budget_refuses_before_any_work(factory: AsyncFactory) -> None:
    people = await setup_people(factory, budget="0.01")
    request_id = await _submit(people)
    with pytest.raises(QuotaExceededError, match="exceeds the remaining budget"):
        await people.admin.requests.execute(request_id)
    request = await people.ana.requests.get(request_id)
    assert request.status is RequestStatus.TEMPLATE_ASSIGNED
    assert request.execution_id is None


async def test_template_with_missing_workers_is_refused_without_side_effects() -> None:
    config = fast_config(workers=[ContentGranulator(), ReportBuilder()])
    async with AsyncFactory.embedded(config=config) as factory:
        people = await setup_people(factory, tier="premium")
        request_id = await _submit(people, "comprehensive_report_pipeline")
        with pytest.raises(WorkerError, match="no worker registered for content_classifier"):
            await people.admin.requests.execute(request_id)
        request = await people.ana.requests.get(request_id)
        assert request.status is RequestStatus.TEMPLATE_ASSIGNED


async def test_bootstrap_admin_only_once(factory: AsyncFactory) -> None:
    with pytest.raises(BadInputError):
        await factory.bootstrap_admin(ADMIN, "short")
    generated = await factory.bootstrap_admin(ADMIN)
    assert len(generated) >= 20
    with pytest.raises(ConflictError):
        await factory.bootstrap_admin("other@factory.example", "another-long-password")
    await factory.login(ADMIN, generated, login_type="admin")


async def test_bad_input_is_refused_with_the_field_named(people: People) -> None:
    ana = people.ana
    for kwargs, field in (
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "ok", "urgency": "yesterday"}, "urgency"),
        ({"title": "ok", "category": ""}, "category"),
    ):
        with pytest.raises(BadInputError) as err:
            await ana.requests.create(**kwargs)  # type: ignore[arg-type]
        assert err.value.details["field"] == field
    admin = people.admin
    with pytest.raises(BadInputError):
        await admin.clients.create(name="Neg", tier="basic", monthly_budget_usd=-1)
    with pytest.raises(BadInputError):
        await admin.clients.create(name="Tierless", tier="platinum", monthly_budget_usd=1)
    with pytest.raises(ConflictError):
        await admin.clients.create(name="acme", tier="basic", monthly_budget_usd=1)
    with pytest.raises(BadInputError):
        await admin.users.create(
            email="not-an-email", password="long-enough-pass", client_id=people.client_id
        )
    with pytest.raises(BadInputError):
        await admin.requests.create(title="For whom?")  # staff must name the client
