"""Markdown rendering of reports: untrusted text stays text, links only to http(s), stable output.

A real CommonMark parser (markdown-it-py, which rich already depends on) checks what the
Markdown means, not just what it looks like.
"""

from __future__ import annotations

from typing import Any

import attrs
from markdown_it import MarkdownIt
from markdown_it.token import Token

from aifactory.workers.report.content import Article, OutlineElement, Overview, ReportContent
from aifactory.workers.report.markdown_render import render_report

EVIL = "# Evil\n[x](javascript:alert(1))"
PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def parse(markdown: str) -> list[Token]:
    return PARSER.parse(markdown)


def inline_text(token: Token) -> str:
    return "".join(child.content for child in token.children or [])


def headings(tokens: list[Token], tag: str) -> list[str]:
    return [
        inline_text(tokens[i + 1])
        for i, token in enumerate(tokens)
        if token.type == "heading_open" and token.tag == tag
    ]


def links(tokens: list[Token]) -> list[str]:
    return [
        str(child.attrs["href"])
        for token in tokens
        for child in token.children or []
        if child.type == "link_open"
    ]


def content(**changes: Any) -> ReportContent:
    outline = (
        OutlineElement(
            "module",
            "Foundations",
            "Where it starts.",
            1,
            (
                OutlineElement(
                    "lesson", "Intro", "First lesson.", 1, (OutlineElement("step", "Do", "", 1),)
                ),
            ),
        ),
        OutlineElement("module", EVIL, "- sneaky description", 2),
    )
    articles = (
        Article(
            "Good news",
            "https://example.com/good",
            "Fine.",
            relevance=0.91234,
            sentiment=0.6,
            sentiment_label="positive",
            published="2024-05-01",
            source="Daily Feed",
        ),
        Article(EVIL, "javascript:alert(1)", "- Bad.\n# not a heading"),
        Article("No address"),
    )
    base = ReportContent(
        title=EVIL,
        method="non-llm:extractive-summary",
        topic="Space",
        structure_type="course",
        granularity=3,
        audience="general",
        summary=("First point.", "Second point."),
        outline=outline,
        articles=articles,
        overview=Overview.of(articles, received=5, topic="Space"),
    )
    return attrs.evolve(base, **changes)


def test_report_structure_as_a_parser_sees_it() -> None:
    rendered = render_report(content(key_points=("Costs fall.", "<b>Risk</b> rises.")))
    tokens = parse(rendered.markdown)
    assert headings(tokens, "h1") == ["# Evil [x](javascript:alert(1))"]
    assert headings(tokens, "h2") == [
        "Executive summary",
        "Key points",
        "Overview",
        "1. Foundations",
        "2. # Evil [x](javascript:alert(1))",
        "Sources",
    ]
    assert rendered.section_count == 6
    assert links(tokens) == ["https://example.com/good"]
    assert rendered.omitted_links == 1
    # A top-level element is a section; its children a list, theirs a list inside it; then
    # the key points and the overview lists come before them.
    levels = [t.level for t in tokens if t.type == "bullet_list_open"]
    assert len(levels) == 4
    assert levels[2] < levels[3]
    assert "First point. Second point." in rendered.markdown
    assert "\n- sneaky description" not in rendered.markdown
    assert "\\- sneaky description" in rendered.markdown
    assert "- \\<b\\>Risk\\</b\\> rises." in rendered.markdown
    assert not [t for t in tokens if t.type in ("html_inline", "html_block")]


def test_sources_show_classification_and_summaries_inside_their_item() -> None:
    markdown = render_report(content()).markdown
    assert (
        "1. [Good news](<https://example.com/good>) — Daily Feed, 2024-05-01 — "
        "relevance 0.912, sentiment positive (+0.60)\n   Fine.\n"
    ) in markdown
    assert "2. \\# Evil \\[x\\](javascript:alert(1)) — javascript:alert(1) (not linked" in (
        markdown
    )
    assert "3. No address\n" in markdown
    tokens = parse(markdown)
    start = next(i for i, t in enumerate(tokens) if t.type == "ordered_list_open")
    items = [t for t in tokens[start:] if t.type == "list_item_open" and t.level == 1]
    assert len(items) == 3
    # The summary "- Bad. # not a heading" stays text in its item: no new list, no heading.
    assert not [t for t in tokens if t.type == "heading_open" and t.tag == "h1"][1:]
    assert not [t for t in tokens[start:] if t.type == "bullet_list_open"]
    inlines = [t for t in tokens[start:] if t.type == "inline"]
    assert inline_text(inlines[1]).endswith("http/https)- Bad. # not a heading")
    assert {c.type for c in inlines[1].children or []} == {"text", "softbreak"}


def test_overview_counts_the_shown_articles() -> None:
    articles = [
        Article(
            "Rockets launch",
            summary="Rockets reach orbit.",
            sentiment=0.5,
            sentiment_label="positive",
            source="A",
            source_url="https://a.example/feed",
        ),
        Article(
            "Rockets fail",
            summary="A rocket exploded.",
            sentiment=-0.5,
            sentiment_label="negative",
            source="a",
            source_url="HTTPS://A.EXAMPLE/FEED",
        ),
        Article(
            "Space budget",
            summary="Budget for rockets.",
            sentiment=0.2,
            sentiment_label="neutral",
            source="B",
        ),
        Article("Unscored", summary="Rockets again."),
    ]
    overview = Overview.of(articles, received=9, topic="space")
    assert overview == Overview(
        received=9,
        shown=4,
        sources=2,
        average_sentiment=0.0667,
        positive=1,
        neutral=1,
        negative=1,
        top_keywords=(
            "Rockets",
            "budget",
            "exploded",
            "fail",
            "launch",
            "orbit",
            "reach",
            "rocket",
        ),
    )
    assert overview.items() == [
        ("Articles", "4 shown of 9 received"),
        ("Publishing sources", "2"),
        ("Average sentiment", "+0.07 (1 positive, 1 neutral, 1 negative)"),
        ("Top keywords", "Rockets, budget, exploded, fail, launch, orbit, reach, rocket"),
    ]
    empty = Overview.of([], received=3)
    assert empty.average_sentiment is None
    assert empty.items()[2:] == [
        ("Average sentiment", "n/a (0 positive, 0 neutral, 0 negative)"),
        ("Top keywords", "none"),
    ]


def test_optional_parts_are_left_out() -> None:
    rendered = render_report(content(include_outline=False, articles=(), summary=(), overview=None))
    tokens = parse(rendered.markdown)
    assert headings(tokens, "h2") == ["Executive summary"]
    assert "No text was available to summarise." in rendered.markdown
    assert "Sources: 0" in rendered.markdown


def test_the_footer_names_the_method() -> None:
    assert "no language model was used" in render_report(content()).markdown
    footer = render_report(content(method="llm:gpt_4*o")).markdown.splitlines()[-1]
    assert footer.startswith("*Method: llm:gpt\\_4\\*o. The executive summary and key points")
    assert "written by a language model" in footer


def test_lone_surrogates_render_as_encodable_text() -> None:
    assert render_report(content(title="bad \udc00 title")).markdown.encode("utf-8")


def test_rendering_is_byte_stable_and_counts_words() -> None:
    first = render_report(content())
    assert first == render_report(content())
    assert first.markdown.endswith("\n")
    assert "\r" not in first.markdown
    short = render_report(ReportContent(title="T", method="m"))
    # "T" 1, "Sources: 0" 2, "Executive summary" 2, the empty-summary note 6, the footer 22.
    assert short.word_count == 33
    assert first.word_count > short.word_count
