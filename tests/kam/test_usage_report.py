"""The usage report per client and month, in process and over HTTP, against a local
OpenAI-compatible server that counts what it billed: every figure is checked against that
count and against the executions' own records, and months split by the UTC calendar."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest

from aifactory import AsyncFactory, AsyncSession, BadInputError, NotFoundError
from aifactory._clock import ManualClock
from aifactory._embedded import EmbeddedFactory
from aifactory.llm import LLMConfig, PriceTable, TokenUsage
from aifactory.models import ExecutionStatus, UsageLine, UsageReport
from aifactory.server import serving
from aifactory.workers import FetchPolicy
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, fast_config, setup_people
from tests.kam.test_ai_pipeline import _catalogue
from tests.openai_server import OpenAIServer
from tests.schema_model import answer
from tests.servers import UvicornThread
from tests.workers.feeds.conftest import FeedServer

pytestmark = pytest.mark.anyio

PRICES = PriceTable()


@pytest.fixture
def model() -> Iterator[OpenAIServer]:
    with OpenAIServer(default=answer) as server:
        yield server


@attrs.frozen
class World:
    factory: AsyncFactory
    admin: AsyncSession
    ana: AsyncSession
    client_id: str
    clock: ManualClock
    admin_password: str

    async def next_month(self) -> World:
        """The world a month later, logged in again (sessions last a day)."""
        self.clock.advance(timedelta(days=31))
        admin = await self.factory.login(ADMIN, self.admin_password, login_type="admin")
        ana = await self.factory.login(ANA, ANA_PASSWORD)
        return attrs.evolve(self, admin=admin, ana=ana)


@pytest.fixture(params=["in-process", "http"])
async def world(
    request: pytest.FixtureRequest, model: OpenAIServer, feeds: FeedServer
) -> AsyncIterator[World]:
    clock = ManualClock()  # 2026-01-01, UTC
    config = fast_config(
        state_url=None,
        clock=clock,
        llm=LLMConfig(model="gpt-4o-mini", api_key=secrets.token_hex(16), base_url=model.base_url),
        fetch_policy=FetchPolicy(allow_loopback=True),  # the local feed server only
        feed_catalogue=_catalogue(feeds),
    )
    if request.param == "in-process":
        async with AsyncFactory.embedded(config=config) as factory:
            people = await setup_people(factory, tier="premium")
            yield World(
                factory, people.admin, people.ana, people.client_id, clock, people.admin_password
            )
        return
    runtime = EmbeddedFactory(config)
    password = await runtime.accounts.bootstrap_admin(ADMIN)
    with UvicornThread(serving(runtime)) as server:
        async with AsyncFactory.connect(server.url) as factory:
            admin = await factory.login(ADMIN, password, login_type="admin")
            acme = await admin.clients.create(name="Acme", tier="premium", monthly_budget_usd=50)
            await admin.users.create(email=ANA, password=ANA_PASSWORD, client_id=acme.id)
            ana = await factory.login(ANA, ANA_PASSWORD)
            yield World(factory, admin, ana, acme.id, clock, password)


def _billed_usd(billed: list[tuple[int, int]]) -> Decimal:
    return sum((PRICES.cost("gpt-4o-mini", TokenUsage(p, c)) for p, c in billed), Decimal(0))


async def _run(
    world: World, template: str, title: str, status: ExecutionStatus = ExecutionStatus.COMPLETED
) -> Any:
    request = await world.ana.requests.create(
        title=title,
        description="How is the AI tools market growing, and what do analysts expect?",
        category="research",
    )
    await world.admin.requests.assign_template(request.id, template)
    execution = await world.admin.requests.execute(request.id)
    final = await world.admin.executions.wait(execution.id, timeout_s=60)
    assert final.status is status, final.error
    return final


def _summed(lines: tuple[UsageLine, ...], name: str = "sum") -> UsageLine:
    total = UsageLine(name)
    for line in lines:
        total += line
    return total


async def test_a_months_usage_is_what_the_model_billed_by_template_and_worker(
    world: World, model: OpenAIServer
) -> None:
    request = await world.ana.requests.create(title="Market analysis for AI tools")
    await world.admin.templates.recommend(request.id)
    recommendation_billed = list(model.billed)
    # The research stage's first reply misses its schema: a re-ask. Aimed at its schema, as
    # `outline` asks the model at the same time.
    model.add("{}", schema="research_plan")
    comprehensive = await _run(world, "comprehensive_report_pipeline", "AI tools market")
    # Every reply of the outline stage misses its schema: three attempts of a reply and its
    # re-ask, then the run fails, its spend charged all the same.
    model.add(*["never json"] * 6)
    quick = await _run(world, "quick_research", "Welding safety", ExecutionStatus.FAILED)
    assert model.pending == 0
    january_billed = list(model.billed)
    january_outlines = model.billed_for("content_structure")  # both runs' granulator calls
    january_used = (await world.admin.clients.get(world.client_id)).used_this_month_usd

    world = await world.next_month()  # February
    february = await _run(world, "comprehensive_report_pipeline", "A February request")

    report = await world.admin.clients.usage(world.client_id, month="2026-01")
    assert isinstance(report, UsageReport)
    assert (report.client_id, report.month) == (world.client_id, "2026-01")
    # Every model call of the month, as the server billed it: the recommendation, the
    # refused reply and its re-ask, and the answers.
    assert report.total.model_calls == len(january_billed)
    assert report.total.tokens == sum(p + c for p, c in january_billed)
    assert report.total.model_usd == _billed_usd(january_billed) > 0
    assert report.recommendations.model_calls == len(recommendation_billed) == 1
    assert report.recommendations.model_usd == _billed_usd(recommendation_billed)
    # The executions' part, by template, is what the executions recorded.
    assert report.total.executions == 2
    assert report.by_status == {"completed": 1, "failed": 1}
    assert [(t.name, t.executions) for t in report.by_template] == [
        ("comprehensive_report_pipeline", 1),
        ("quick_research", 1),
    ]
    by_template = {t.name: t for t in report.by_template}
    for execution in (comprehensive, quick):
        line = by_template[execution.template.name]
        assert line.model_usd == execution.cost.llm_usd
        assert line.storage_usd == execution.cost.storage_usd
        assert line.compute_usd == execution.cost.compute_usd
        assert line.model_calls == execution.usage.model_calls
    executions = _summed(report.by_template)
    assert executions + report.recommendations == attrs.evolve(report.total, name="sum")
    # By worker: the same spend, split by who did it.
    workers = _summed(report.by_worker)
    assert (workers.model_calls, workers.tokens, workers.total_usd) == (
        executions.model_calls,
        executions.tokens,
        executions.total_usd,
    )
    assert {w.name for w in report.by_worker} >= {"topic_researcher", "content_granulator"}
    assert {w.name: w.executions for w in report.by_worker}["report_builder"] == 2
    granulator = {w.name: w for w in report.by_worker}["content_granulator"]
    assert granulator.executions == 2
    # quick_research's six failed calls and the comprehensive run's `outline` call.
    assert granulator.model_calls == len(january_outlines) == 6 + 1
    assert granulator.model_usd == _billed_usd(january_outlines) > quick.cost.llm_usd > 0
    # What the budget was charged in January is the report's total.
    assert report.charged_usd == january_used == report.total.total_usd
    assert report.budget_usd == Decimal(50)

    # February: a new month starts from zero, and its report holds only its execution.
    feb = await world.ana.clients.usage(world.client_id)  # this month, the client's own
    assert feb.month == "2026-02"
    assert feb.total.executions == 1
    assert feb.total.model_usd == february.cost.llm_usd
    assert feb.total.model_calls == len(model.billed) - len(january_billed)
    assert feb.charged_usd == february.cost.total_usd
    assert (await world.admin.clients.get(world.client_id)).used_this_month_usd == (
        february.cost.total_usd
    )

    # As CSV: a row per line, the same figures.
    text = (await world.admin.clients.usage_csv(world.client_id, month="2026-01")).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["group"], r["name"]) for r in rows] == [
        ("total", "total"),
        ("recommendations", "recommendations"),
        *(("template", t.name) for t in report.by_template),
        *(("worker", w.name) for w in report.by_worker),
    ]
    total = rows[0]
    assert int(total["model_calls"]) == report.total.model_calls
    assert int(total["prompt_tokens"]) + int(total["completion_tokens"]) == report.total.tokens
    assert Decimal(total["model_usd"]) == report.total.model_usd
    assert Decimal(total["total_usd"]) == report.total.total_usd


async def test_a_client_reads_only_its_own_usage_and_months_are_checked(world: World) -> None:
    other = await world.admin.clients.create(name="Other", tier="basic", monthly_budget_usd=5)
    empty = await world.admin.clients.usage(other.id, month="2025-12")
    assert empty.total == UsageLine("total")
    assert empty.by_template == empty.by_worker == ()
    assert empty.charged_usd == 0

    with pytest.raises(NotFoundError):
        await world.ana.clients.usage(other.id)
    with pytest.raises(NotFoundError):
        await world.ana.clients.usage_csv(other.id)
    with pytest.raises(NotFoundError):
        await world.admin.clients.usage("cli_nobody")
    for month in ("2026-13", "2026-1", "January", "2026-00", "0000-01"):
        with pytest.raises(BadInputError) as caught:
            await world.admin.clients.usage(world.client_id, month=month)
        assert caught.value.details["field"] == "month"
