"""`ReportBuilder` as a worker: inputs, the stored report, determinism and refusals."""

from __future__ import annotations

from typing import Any

import pytest
from markdown_it import MarkdownIt

from aifactory._exceptions import BadInputError
from aifactory.models import StorageRef, Usage
from aifactory.protocol.codec import dumps, unstructure
from aifactory.workers.granulator import ContentGranulator
from aifactory.workers.report_builder import MEDIA_TYPE, ReportBuilder, ReportJob, build_report
from aifactory.workers.structures import build_structure
from aifactory.workers.summarize import extractive_summary

from .conftest import ArtifactShelf

EVIL = "# Evil\n[x](javascript:alert(1))"
ARTICLES: list[dict[str, Any]] = [
    {
        "title": "Agents reshape developer tools",
        "url": "https://example.com/agents",
        "summary": "Coding agents now write tests. Agents also review pull requests for teams.",
        "relevance": 0.9,
        "sentiment": "positive",
    },
    {
        "title": EVIL,
        "url": "javascript:alert(1)",
        "summary": "Pricing of agents keeps falling. The weather was fine.",
        "relevance": 0.4,
        "sentiment": -0.25,
    },
]


def structure() -> dict[str, Any]:
    return build_structure("course", "AI tools", 1, "managers", "agents copilots agents")


async def build(shelf: ArtifactShelf, inputs: dict[str, Any], **params: Any) -> Any:
    return await ReportBuilder().process("build_report", inputs, params, shelf.context())


def h2(markdown: str) -> list[str]:
    tokens = MarkdownIt("commonmark").parse(markdown)
    return [
        "".join(c.content for c in tokens[i + 1].children or [])
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.tag == "h2"
    ]


def hrefs(markdown: str) -> list[str]:
    tokens = MarkdownIt("commonmark").parse(markdown)
    return [str(c.attrs["href"]) for t in tokens for c in t.children or [] if c.type == "link_open"]


def test_declares_its_name_action_and_defaults() -> None:
    worker = ReportBuilder()
    assert worker.name == "report_builder"
    assert worker.info.actions == ("build_report",)
    assert dict(worker.defaults) == {
        "format": "markdown",
        "include_outline": True,
        "max_summary_sentences": 5,
    }


@pytest.mark.anyio
async def test_renders_a_structure_and_articles_and_stores_the_report(
    shelf: ArtifactShelf,
) -> None:
    inputs = {
        "structure": structure(),
        "articles": ARTICLES,
        "request": {"title": "Market scan", "description": "Agents are changing how teams ship."},
    }
    result = await build(shelf, inputs, max_summary_sentences=3)
    data, media_type = shelf.artifacts["report.md"]
    markdown = data.decode("utf-8")
    assert media_type == MEDIA_TYPE == "text/markdown; charset=utf-8"
    out = result.output
    assert out["title"] == "Market scan"
    assert out["format"] == "markdown"
    assert out["method"] == "non-llm:extractive-summary"
    assert out["artifacts"] == [
        {
            "type": "report",
            "name": "report.md",
            "media_type": MEDIA_TYPE,
            "ref": unstructure(StorageRef.inline(data, MEDIA_TYPE)),
        }
    ]
    assert markdown.startswith("# Market scan\n")
    assert h2(markdown) == [
        "Executive summary",
        "1. Agents",
        "2. Copilots",
        "3. Methods and tools for AI tools",
        "Sources",
    ]
    assert out["section_count"] == 5
    assert "- **Introduction to agents** (lesson) — " in markdown
    assert "1. [Agents reshape developer tools](<https://example.com/agents>)" in markdown
    assert "sentiment \\-0.25" in markdown  # escaped like any text that could start a list
    assert hrefs(markdown) == ["https://example.com/agents"]
    assert "\n# Evil" not in markdown
    assert "\\# Evil \\[x\\](javascript:alert(1))" in markdown
    # The summary comes from the request and the articles, best sentences in reading order.
    texts = ["Agents are changing how teams ship.", *(a["summary"] for a in ARTICLES)]
    assert out["summary"] == " ".join(extractive_summary(texts, 3))
    assert "The weather was fine." not in out["summary"]
    assert out["summary"] in markdown
    assert out["word_count"] > 100
    assert result.summary.method == "non-llm:extractive-summary"
    assert result.summary.usage == Usage()
    assert any("not linked" in note for note in result.summary.notes)
    assert [percent for percent, _ in shelf.progress] == [10, 30, 80, 100]


@pytest.mark.anyio
async def test_a_malicious_report_title_is_escaped(shelf: ArtifactShelf) -> None:
    result = await build(shelf, {"title": EVIL})
    markdown = shelf.artifacts["report.md"][0].decode()
    assert markdown.splitlines()[0] == "# \\# Evil \\[x\\](javascript:alert(1))"
    assert hrefs(markdown) == []
    assert result.output["title"] == "# Evil [x](javascript:alert(1))"


@pytest.mark.anyio
async def test_identical_input_gives_byte_identical_output(shelf: ArtifactShelf) -> None:
    inputs = {"structure": structure(), "articles": ARTICLES, "topic": "AI tools"}
    first = await build(shelf, inputs)
    first_bytes = shelf.artifacts.pop("report.md")[0]
    second = await build(shelf, {**inputs, "articles": [dict(a) for a in ARTICLES]})
    assert shelf.artifacts["report.md"][0] == first_bytes
    assert dumps(first.output) == dumps(second.output)


@pytest.mark.anyio
async def test_structure_descriptions_are_summarised_when_nothing_else_is_given(
    shelf: ArtifactShelf,
) -> None:
    tree = structure()
    result = await build(shelf, {"structure": tree}, max_summary_sentences=2)
    descriptions = [e["description"] for e in tree["elements"]]
    descriptions += [c["description"] for e in tree["elements"] for c in e["children"]]
    assert result.output["summary"] == " ".join(extractive_summary(descriptions, 2))
    assert result.output["title"] == "Course: AI tools"


@pytest.mark.anyio
async def test_without_the_outline_only_summary_and_sources_remain(shelf: ArtifactShelf) -> None:
    result = await build(
        shelf, {"structure": structure(), "articles": ARTICLES}, include_outline=False
    )
    assert h2(shelf.artifacts["report.md"][0].decode()) == ["Executive summary", "Sources"]
    assert result.output["section_count"] == 2


@pytest.mark.anyio
async def test_a_granulator_output_feeds_the_report(shelf: ArtifactShelf) -> None:
    granulated = await ContentGranulator().process(
        "granulate",
        {"topic": "Urban cycling"},
        {"structure_type": "research_report", "granularity": 2},
        shelf.context(),
    )
    await build(shelf, {"structure": granulated.output})
    headings = h2(shelf.artifacts["report.md"][0].decode())
    assert headings[1:4] == ["1. Executive summary", "2. Background", "3. Findings"]


@pytest.mark.parametrize(
    ("inputs", "params", "message"),
    [
        ({}, {}, "at least one of"),
        ({"articles": []}, {}, "at least one of"),
        ({"topic": "  "}, {}, "at least one of"),
        ({"topic": "x"}, {"format": "html"}, "html and json come with the AI workers"),
        ({"topic": "x"}, {"format": "pdf"}, "not available"),
        ({"topic": "x"}, {"include_outline": "yes"}, "include_outline"),
        ({"topic": "x"}, {"max_summary_sentences": 0}, "max_summary_sentences"),
        ({"topic": "x"}, {"max_summary_sentences": 51}, "max_summary_sentences"),
        ({"topic": "x"}, {"max_summary_sentences": True}, "max_summary_sentences"),
        ({"structure": "not a tree"}, {}, "structure must be an object"),
        ({"structure": {"elements": {}}}, {}, "structure.elements must be a list"),
        ({"structure": {"elements": [{"title": 3}]}}, {}, r"elements\[0\].title"),
        ({"structure": {"elements": [{"order": "1"}]}}, {}, "order must be an integer"),
        ({"articles": "none"}, {}, "articles must be a list"),
        ({"articles": [{"relevance": float("nan")}]}, {}, r"articles\[0\].relevance"),
        ({"articles": [{"url": 5}]}, {}, r"articles\[0\].url"),
        ({"topic": "x", "request": ["no"]}, {}, "request must be an object"),
        ({"topic": "x" * 20_001}, {}, "longer than"),
    ],
)
def test_unusable_input_is_refused(
    inputs: dict[str, Any], params: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadInputError, match=message):
        ReportBuilder().check_input("build_report", inputs, params)


def test_overly_deep_or_large_structures_are_refused() -> None:
    deep: dict[str, Any] = {"title": "leaf"}
    for _ in range(20):
        deep = {"title": "node", "children": [deep]}
    with pytest.raises(BadInputError, match="deeper than"):
        ReportBuilder().check_input("build_report", {"structure": {"elements": [deep]}}, {})
    wide = {"elements": [{"title": str(i)} for i in range(10_001)]}
    with pytest.raises(BadInputError, match="more than"):
        ReportBuilder().check_input("build_report", {"structure": wide}, {})


@pytest.mark.anyio
async def test_process_refuses_what_check_input_refuses(shelf: ArtifactShelf) -> None:
    with pytest.raises(BadInputError, match="at least one of"):
        await build(shelf, {})
    assert shelf.artifacts == {}


def test_missing_fields_get_sensible_defaults() -> None:
    job = ReportJob.from_stage(
        {"articles": [{"url": "https://example.com/x"}, {}]},
        {"format": "markdown", "include_outline": True, "max_summary_sentences": 3},
    )
    assert job.title == "Report"
    assert [a.title for a in job.articles] == ["https://example.com/x", "Untitled source"]
    _, rendered = build_report(job)
    assert "Sources: 2" in rendered.markdown


def test_estimate_uses_no_tokens() -> None:
    estimate = ReportBuilder().estimate("build_report", {"articles": ARTICLES}, {})
    assert estimate.prompt_tokens == estimate.completion_tokens == 0
    assert estimate.duration_ms > 0
