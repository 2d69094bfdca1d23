"""Every model call is costed and charged, against a local OpenAI-compatible server that
counts what it billed: a recommendation, replies that miss their schema and are re-asked,
stage attempts that fail and are retried, and a run that fails for good."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anyio
import pytest

from aifactory import AsyncFactory, WorkerError
from aifactory.llm import LLMConfig, PriceTable, TokenUsage
from aifactory.models import ExecutionStatus
from aifactory.workers import FetchPolicy
from tests.helpers import People, fast_config, setup_people
from tests.kam.test_ai_pipeline import _catalogue
from tests.openai_server import (
    OpenAIServer,
    ScriptedCompletion,
    held,
    rate_limited,
    server_error,
)
from tests.schema_model import answer
from tests.workers.feeds.conftest import FeedServer

pytestmark = pytest.mark.anyio

PRICES = PriceTable()


@pytest.fixture
def model() -> Iterator[OpenAIServer]:
    with OpenAIServer(default=answer) as server:
        yield server


def _billed_usd(server: OpenAIServer) -> Decimal:
    """What the server's own count of tokens costs at gpt-4o-mini's price."""
    return sum((PRICES.cost("gpt-4o-mini", TokenUsage(p, c)) for p, c in server.billed), Decimal(0))


def _config(model: OpenAIServer, feeds: FeedServer | None = None) -> Any:
    llm = LLMConfig(model="gpt-4o-mini", api_key=secrets.token_hex(16), base_url=model.base_url)
    if feeds is None:
        return fast_config(state_url=None, llm=llm)
    return fast_config(
        state_url=None,
        llm=llm,
        fetch_policy=FetchPolicy(allow_loopback=True),  # the local feed server only
        feed_catalogue=_catalogue(feeds),
    )


async def _execute(people: People) -> str:
    request = await people.ana.requests.create(
        title="Market analysis for AI tools",
        description="How is the AI tools market growing, and what do analysts expect?",
        category="research",
    )
    await people.admin.requests.assign_template(request.id, "comprehensive_report_pipeline")
    return (await people.admin.requests.execute(request.id)).id


async def _used(people: People) -> Decimal:
    return (await people.admin.clients.get(people.client_id)).used_this_month_usd


async def test_a_recommendation_is_charged_what_the_model_billed(model: OpenAIServer) -> None:
    async with AsyncFactory.embedded(config=_config(model)) as factory:
        people = await setup_people(factory, tier="basic")
        request = await people.ana.requests.create(title="A course on welding safety")
        found = await people.admin.templates.recommend(request.id)
        assert found[0].method == "llm:gpt-4o-mini"
        assert len(model.billed) == 1
        assert await _used(people) == _billed_usd(model) > 0
        [entry] = [e for e in await people.admin.audit.list() if e.action == "templates.recommend"]
        assert entry.details["cost_usd"] == str(_billed_usd(model))
        assert entry.details["prompt_tokens"] + entry.details["completion_tokens"] == (
            model.billed_tokens
        )

        # Answers that miss the schema twice are of no use, and billed all the same.
        model.add("not json", "still not json")
        with pytest.raises(WorkerError, match="outside the schema"):
            await people.admin.templates.recommend(request.id)
        assert len(model.billed) == 3
        assert await _used(people) == _billed_usd(model)


async def test_failed_and_retried_attempts_are_costed_to_the_stage(
    model: OpenAIServer, feeds: FeedServer
) -> None:
    async with AsyncFactory.embedded(config=_config(model, feeds)) as factory:
        people = await setup_people(factory, tier="premium")
        # The research stage's first attempt: a reply outside the schema, then its re-ask
        # too (the attempt fails); then a 500 and a 429 the provider retries (neither is
        # billed); then answers. Aimed at its schema: `outline` asks the model at the same time.
        model.add("{}", "{}", server_error(), rate_limited(), schema="research_plan")
        execution_id = await _execute(people)
        final = await people.admin.executions.wait(execution_id, timeout_s=60)
        assert final.status is ExecutionStatus.COMPLETED, final.error
        stages = {s.stage_id: s for s in await people.admin.executions.stages(execution_id)}
        assert stages["research"].attempt == 2
        assert model.pending == 0
        research = model.billed_for("research_plan")
        assert len(research) == 3  # two refused replies, then the answer
        assert stages["research"].usage.tokens == sum(p + c for p, c in research)
        assert stages["research"].usage.model_calls == 3
        assert final.usage.tokens == model.billed_tokens
        assert final.usage.model_calls == len(model.billed)
        assert final.cost.llm_usd == _billed_usd(model)
        assert sum(s.usage.tokens for s in stages.values()) == model.billed_tokens
        assert sum(s.usage.model_calls for s in stages.values()) == len(model.billed)
        assert await _used(people) == final.cost.total_usd


async def test_a_run_that_fails_is_charged_for_its_model_calls(
    model: OpenAIServer, feeds: FeedServer
) -> None:
    async with AsyncFactory.embedded(config=_config(model, feeds)) as factory:
        people = await setup_people(factory, tier="premium")
        model.reset(default="never json")  # every reply misses its schema
        execution_id = await _execute(people)
        final = await people.admin.executions.wait(execution_id, timeout_s=60)
        assert final.status is ExecutionStatus.FAILED
        assert len(model.billed) >= 2 * 3  # three attempts, each a reply and its re-ask
        assert final.usage.tokens == model.billed_tokens
        assert final.usage.model_calls == len(model.billed)
        assert final.cost.llm_usd == _billed_usd(model) > 0
        assert await _used(people) == final.cost.total_usd


async def test_a_cancelled_run_is_charged_for_the_replies_that_came_back(
    model: OpenAIServer, feeds: FeedServer
) -> None:
    asked, release = threading.Event(), threading.Event()
    hang = held(asked, release)  # the re-ask: held until the run is cancelled
    async with AsyncFactory.embedded(config=_config(model, feeds)) as factory:
        people = await setup_people(factory, tier="premium")
        # The research stage: a reply outside the schema, its re-ask. The `outline` stage runs
        # beside it and is answered by the default.
        model.add("{}", hang, schema="research_plan")
        try:
            execution_id = await _execute(people)
            assert await anyio.to_thread.run_sync(asked.wait, 30)
            # Cancel once `outline` is done (its event commits with it), so that every reply
            # that came back is recorded.
            with anyio.fail_after(30):
                events = people.admin.executions.events(execution_id)
                async with contextlib.aclosing(events):  # type: ignore[type-var]
                    async for event in events:
                        if (event.kind, event.stage_id) == ("stage.succeeded", "outline"):
                            break
            final = await people.admin.executions.cancel(execution_id)
        finally:
            release.set()
        assert final.status is ExecutionStatus.CANCELLED
        [research_billed] = model.billed_for("research_plan")  # the hung re-ask is not
        assert final.usage.tokens == model.billed_tokens > 0
        assert final.usage.model_calls == len(model.billed)
        assert final.cost.llm_usd == _billed_usd(model)
        stages = await people.admin.executions.stages(execution_id)
        [research] = [s for s in stages if s.stage_id == "research"]
        assert research.usage.tokens == sum(research_billed)
        assert research.usage.model_calls == 1
        assert await _used(people) == final.cost.total_usd


async def test_a_stage_spends_no_more_than_the_budget_leaves_but_one_prompt(
    model: OpenAIServer,
) -> None:
    budget = Decimal("0.05")  # quick_research's estimate: admitted, and nothing more
    async with AsyncFactory.embedded(config=_config(model)) as factory:
        people = await setup_people(factory, tier="basic", budget=budget)
        # A runaway reply: 100 million completion tokens would cost 60 USD. The model's
        # request carries a max_tokens that what is left pays for; the server honours it.
        model.add(ScriptedCompletion("not json " * 10, completion_tokens=10**8))
        request = await people.ana.requests.create(title="A course on welding safety")
        await people.admin.requests.assign_template(request.id, "quick_research")
        execution = await people.admin.requests.execute(request.id)
        final = await people.admin.executions.wait(execution.id, timeout_s=60)
        assert final.status is ExecutionStatus.FAILED
        assert "budget" in (final.error or "")
        sent = [c.get("max_tokens") for c in model.completions]
        assert sent
        assert all(isinstance(cap, int) and cap > 0 for cap in sent)
        assert sent == sorted(sent, reverse=True)  # each call gets what is left
        # Spent: what the server billed, charged; over the budget by less than one prompt.
        spent = _billed_usd(model)
        assert final.cost.llm_usd == spent
        assert await _used(people) == final.cost.total_usd
        prompts = [PRICES.cost("gpt-4o-mini", TokenUsage(p, 0)) for p, _ in model.billed]
        assert budget * Decimal("0.9") < spent <= budget + max(prompts)
