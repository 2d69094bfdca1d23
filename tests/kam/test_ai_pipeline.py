"""The comprehensive report pipeline from local feeds, without and with a model (a local
OpenAI-compatible server), and template recommendation both ways. Nothing leaves 127.0.0.1:
the catalogue points at a local feed server and fetching is allowed only there."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from decimal import Decimal

import pytest

from aifactory import AsyncFactory, WorkerError
from aifactory.llm import LLMConfig
from aifactory.models import ExecutionStatus, StageStatus
from aifactory.workers import CatalogueEntry, FetchPolicy
from tests.helpers import People, fast_config, setup_people
from tests.openai_server import OpenAIServer
from tests.schema_model import answer
from tests.workers.feeds.conftest import FeedServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def model() -> Iterator[OpenAIServer]:
    with OpenAIServer(default=answer) as server:
        yield server


def _catalogue(feeds: FeedServer) -> tuple[CatalogueEntry, ...]:
    return (
        CatalogueEntry(
            "Example AI Weekly",
            feeds.url("/feeds/rss2.xml"),
            "ai-weekly.example",
            "technology",
            ("ai", "tools", "market", "machine learning"),
        ),
        CatalogueEntry(
            "Example Atom",
            feeds.url("/feeds/atom.xml"),
            "atom.example",
            "technology",
            ("ai", "analysis", "market"),
        ),
        CatalogueEntry(
            "Gardening",
            feeds.url("/feeds/feed.json"),
            "garden.example",
            "lifestyle",
            ("gardening", "roses"),
        ),
    )


def _config(feeds: FeedServer, model: OpenAIServer | None = None) -> object:
    llm = None
    if model is not None:
        llm = LLMConfig(model="gpt-4o-mini", api_key=secrets.token_hex(16), base_url=model.base_url)
    return fast_config(
        state_url=None,  # a fresh factory each time, whatever the suite's state backend
        llm=llm,
        fetch_policy=FetchPolicy(allow_loopback=True),  # the local feed server only
        feed_catalogue=_catalogue(feeds),
    )


async def _run(people: People) -> tuple[str, str]:
    request = await people.ana.requests.create(
        title="Market analysis for AI tools",
        description="How is the AI tools market growing, and what do analysts expect?",
        category="research",
    )
    await people.admin.requests.assign_template(request.id, "comprehensive_report_pipeline")
    execution = await people.admin.requests.execute(request.id)
    final = await people.admin.executions.wait(execution.id, timeout_s=60)
    assert final.status is ExecutionStatus.COMPLETED, final.error
    return request.id, execution.id


async def test_the_comprehensive_pipeline_reports_from_local_feeds_without_a_model(
    feeds: FeedServer,
) -> None:
    async with AsyncFactory.embedded(config=_config(feeds)) as factory:  # type: ignore[arg-type]
        people = await setup_people(factory, tier="premium")
        request_id, execution_id = await _run(people)
        stages = await people.admin.executions.stages(execution_id)
        assert [s.stage_id for s in stages] == [
            "research",
            "outline",
            "find_sources",
            "fetch",
            "classify",
            "report",
        ]
        assert all(s.status is StageStatus.SUCCEEDED for s in stages)
        assert all(s.summary["method"].startswith("non-llm:") for s in stages)
        files = {d.filename: d for d in await people.ana.deliverables.list(request_id)}
        assert set(files) == {"report.md", "report.html", "report.pdf"}
        assert files["report.html"].media_type.startswith("text/html")
        report = (await people.ana.deliverables.download(files["report.md"].id)).decode()
        html = (await people.ana.deliverables.download(files["report.html"].id)).decode()
        assert html.startswith("<!doctype html>")
        assert "<script" not in html
        assert "AI tools market grows 40% in a year" in report
        assert "https://ai-weekly.example/2026/01/open-models" in report  # absolute link kept
        assert "<script>" not in report
        assert feeds.hits["/feeds/rss2.xml"] >= 1
        execution = await people.admin.executions.get(execution_id)
        assert execution.cost.llm_usd == 0
        assert execution.usage.tokens == 0


async def test_the_same_pipeline_through_a_local_model_records_its_costs(
    feeds: FeedServer, model: OpenAIServer
) -> None:
    async with AsyncFactory.embedded(config=_config(feeds, model)) as factory:  # type: ignore[arg-type]
        people = await setup_people(factory, tier="premium")
        request_id, execution_id = await _run(people)
        stages = {s.stage_id: s for s in await people.admin.executions.stages(execution_id)}
        for sid in ("research", "classify"):
            assert stages[sid].summary["method"] == "llm:gpt-4o-mini"
            assert stages[sid].usage.prompt_tokens > 0
            assert stages[sid].cost.llm_usd > 0
        execution = await people.admin.executions.get(execution_id)
        assert execution.usage.tokens == sum(s.usage.tokens for s in stages.values())
        assert execution.cost.llm_usd == sum((s.cost.llm_usd for s in stages.values()), Decimal(0))
        client = await people.admin.clients.get(people.client_id)
        assert client.used_this_month_usd == execution.cost.total_usd
        # Fetched text reaches the model only as data in user messages.
        for body in model.completions:
            system = [m["content"] for m in body["messages"] if m["role"] == "system"]
            assert all("market grows" not in text for text in system)
        assert any("market grows" in m["content"] for b in model.completions for m in b["messages"])
        files = {d.filename: d for d in await people.ana.deliverables.list(request_id)}
        assert (await people.ana.deliverables.download(files["report.md"].id)).startswith(b"#")
        assert stages["report"].summary["method"] == "llm:gpt-4o-mini"


async def test_recommendation_ranks_affordable_templates_by_keywords(feeds: FeedServer) -> None:
    async with AsyncFactory.embedded(config=_config(feeds)) as factory:  # type: ignore[arg-type]
        people = await setup_people(factory, tier="premium")
        course = await people.ana.requests.create(
            title="Onboarding course for new nurses",
            description="A training curriculum with lessons and exercises.",
            category="education",
        )
        [best, *rest] = await people.admin.templates.recommend(course.id)
        assert best.template == "educational_course_basic"
        assert best.method == "non-llm:keyword-similarity"
        assert any("course" in reason for reason in best.reasons)
        assert all(best.confidence >= r.confidence for r in rest)
        market = await people.ana.requests.create(
            title="Competitive intelligence report on AI tools market trends",
            category="research",
        )
        assert (await people.admin.templates.recommend(market.id))[0].template == (
            "comprehensive_report_pipeline"
        )
    # A basic client never gets the standard+ pipeline; a tiny budget excludes what it can't pay.
    async with AsyncFactory.embedded(config=_config(feeds)) as factory:  # type: ignore[arg-type]
        people = await setup_people(factory, tier="basic", budget="0.10")
        market = await people.ana.requests.create(title="Market intelligence report on AI news")
        names = {r.template for r in await people.admin.templates.recommend(market.id, limit=10)}
        assert names == {"quick_research", "educational_course_basic"}
    async with AsyncFactory.embedded(config=_config(feeds)) as factory:  # type: ignore[arg-type]
        people = await setup_people(factory, tier="premium", budget="0.01")
        market = await people.ana.requests.create(title="Market intelligence report on AI news")
        assert await people.admin.templates.recommend(market.id) == []


async def test_recommendation_through_a_model_is_checked(
    feeds: FeedServer, model: OpenAIServer
) -> None:
    async with AsyncFactory.embedded(config=_config(feeds, model)) as factory:  # type: ignore[arg-type]
        people = await setup_people(factory, tier="basic")
        request = await people.ana.requests.create(title="A course on welding safety")
        model.add(
            {
                "recommendations": [
                    {
                        "template": "educational_course_basic",
                        "confidence": 0.9,
                        "reasons": ["a course"],
                    },
                    {"template": "quick_research", "confidence": 0.2, "reasons": ["could do"]},
                ]
            }
        )
        [best, second] = await people.admin.templates.recommend(request.id)
        assert (best.template, best.confidence, best.method) == (
            "educational_course_basic",
            0.9,
            "llm:gpt-4o-mini",
        )
        assert second.template == "quick_research"
        sent = model.completions[-1]
        schema = sent["response_format"]["json_schema"]["schema"]
        allowed = schema["properties"]["recommendations"]["items"]["properties"]["template"]["enum"]
        assert "comprehensive_report_pipeline" not in allowed  # not for the basic tier
        assert "welding" not in sent["messages"][0]["content"]  # the request is data, not orders
        # A template the tier may not use, even if the model insists, is refused.
        bad = {"template": "comprehensive_report_pipeline", "confidence": 1, "reasons": ["x"]}
        model.add({"recommendations": [bad]}, {"recommendations": [bad]})
        with pytest.raises(WorkerError, match="outside the schema"):
            await people.admin.templates.recommend(request.id)
        keywords = await people.admin.templates.recommend(request.id, use_llm=False)
        assert keywords[0].method == "non-llm:keyword-similarity"
