"""Markdown rendering: untrusted text stays text, links only to http(s), stable output.

A real CommonMark parser (markdown-it-py, which rich already depends on) checks what the
Markdown means, not just what it looks like.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from aifactory.workers.report_markdown import (
    Article,
    OutlineElement,
    ReportContent,
    escape_markdown,
    render_report,
    safe_link_url,
)

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


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain words, fine.", "plain words, fine."),
        (EVIL, "\\# Evil \\[x\\](javascript:alert(1))"),
        ("- not a list", "\\- not a list"),
        ("+ nor this", "\\+ nor this"),
        ("1. nor this", "1\\. nor this"),
        ("12) nor this", "12\\) nor this"),
        ("=== no underline", "\\=== no underline"),
        ("<script>alert(1)</script>", "\\<script\\>alert(1)\\</script\\>"),
        ("`code` *em* _em_ ~~s~~ a|b", "\\`code\\` \\*em\\* \\_em\\_ \\~\\~s\\~\\~ a\\|b"),
        ("&amp; \\n", "\\&amp; \\\\n"),
        ("> quote", "\\> quote"),
        ("    indented\ttext  ", "indented text"),
        ("bidi \u202eevil\u202c ctrl\x00x", "bidi evil ctrl x"),
    ],
)
def test_escape_markdown(text: str, escaped: str) -> None:
    assert escape_markdown(text) == escaped


def shown(text: str) -> str:
    """What a reader should see: no bidi overrides, controls as spaces, whitespace collapsed."""
    kept = "".join(
        " " if unicodedata.category(c) == "Cc" else c
        for c in text
        if c not in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    )
    return " ".join(kept.split())


def assert_renders_as_text(text: str) -> None:
    tokens = parse(escape_markdown(text))
    if not shown(text):
        assert tokens == []
        return
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"]
    assert {child.type for child in tokens[1].children or []} == {"text"}
    assert inline_text(tokens[1]) == shown(text)


@given(st.text(max_size=80))
def test_escaped_text_renders_as_one_paragraph_of_exactly_that_text(text: str) -> None:
    assert_renders_as_text(text)


@given(st.text(alphabet="#-+=*_`[]()<>!&|~\\:. 0123456789ab\n\t", max_size=40))
def test_markdown_punctuation_never_becomes_structure(text: str) -> None:
    assert_renders_as_text(text)


@pytest.mark.parametrize(
    "url",
    ["https://example.com/a?b=c#d", "http://example.org", "HTTPS://EXAMPLE.COM/x_(y)"],
)
def test_http_links_are_safe(url: str) -> None:
    assert safe_link_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<b>x</b>",
        "ftp://example.com/file",
        "//example.com/path",
        "/relative/path",
        "https://",
        "https://exa mple.com",
        "https://example.com/<x>",
        "https://example.com\\@evil.com",
        "https://example.com/\nnext",
        "https://[::1",
        "",
        "https://example.com/" + "a" * 2048,
    ],
)
def test_other_links_are_refused(url: str) -> None:
    assert safe_link_url(url) is None


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
        Article("Good news", "https://example.com/good", "Fine.", 0.91234, "positive"),
        Article(EVIL, "javascript:alert(1)", "Bad."),
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
    )
    return attrs.evolve(base, **changes)


def test_report_structure_as_a_parser_sees_it() -> None:
    rendered = render_report(content())
    tokens = parse(rendered.markdown)
    assert headings(tokens, "h1") == ["# Evil [x](javascript:alert(1))"]
    assert headings(tokens, "h2") == [
        "Executive summary",
        "1. Foundations",
        "2. # Evil [x](javascript:alert(1))",
        "Sources",
    ]
    assert rendered.section_count == 4
    assert links(tokens) == ["https://example.com/good"]
    assert rendered.omitted_links == 1
    # A top-level element is a section; its children a list, theirs a list inside it.
    levels = [t.level for t in tokens if t.type == "bullet_list_open"]
    assert len(levels) == 2
    assert levels[0] < levels[1]
    assert "First point. Second point." in rendered.markdown
    assert "\n- sneaky description" not in rendered.markdown
    assert "\\- sneaky description" in rendered.markdown


def test_sources_show_refused_addresses_as_text() -> None:
    markdown = render_report(content()).markdown
    assert "1. [Good news](<https://example.com/good>) — relevance 0.912, sentiment positive" in (
        markdown
    )
    assert "2. \\# Evil \\[x\\](javascript:alert(1)) — javascript:alert(1) (not linked" in (
        markdown
    )
    assert "3. No address\n" in markdown


def test_optional_parts_are_left_out() -> None:
    rendered = render_report(content(include_outline=False, articles=(), summary=()))
    tokens = parse(rendered.markdown)
    assert headings(tokens, "h2") == ["Executive summary"]
    assert "No text was available to summarise." in rendered.markdown
    assert "Sources: 0" in rendered.markdown


def test_rendering_is_byte_stable_and_counts_words() -> None:
    first = render_report(content())
    assert first == render_report(content())
    assert first.markdown.endswith("\n")
    assert "\r" not in first.markdown
    short = render_report(ReportContent(title="T", method="m"))
    # "T" 1, "Sources: 0" 2, "Executive summary" 2, the empty-summary note 6, the footer 22.
    assert short.word_count == 33
    assert first.word_count > short.word_count
