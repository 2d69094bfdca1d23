"""HTML rendering: a well-formed standalone document, untrusted text stays text, safe links.

The stdlib `html.parser` reads the document back; `StrictDocument` fails on any end tag that
does not close the innermost open element, on unclosed elements, and records every start
tag with its (decoded) attributes and the text inside each element.
"""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aifactory.workers.report.content import Article, OutlineElement, Overview, ReportContent
from aifactory.workers.report.html_render import (
    CONTENT_SECURITY_POLICY,
    STYLESHEET,
    escape_html,
    render_html,
)
from aifactory.workers.text.escape import plain_text

SCRIPT = "<script>alert(1)</script>"
VOID = frozenset({"meta", "br", "hr", "link", "img", "input"})


class StrictDocument(HTMLParser):
    """Parses a document, checking that every element is closed in order."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.doctype: str | None = None
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: dict[str, list[str]] = {}
        self.errors: list[str] = []
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed: {self.stack}")

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.doctype is None:
            self.errors.append(f"<{tag}> before the doctype")
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.errors.append(f"self-closing <{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack:
            self.texts.setdefault(self.stack[-1], []).append(data)

    def handle_comment(self, data: str) -> None:
        self.errors.append("comment")

    def starts(self, tag: str) -> list[dict[str, str | None]]:
        return [attributes for name, attributes in self.tags if name == tag]


def document(text: str) -> StrictDocument:
    parsed = StrictDocument(text)
    assert parsed.errors == []
    assert parsed.doctype == "doctype html"
    assert [t for t, _ in parsed.tags[:2]] == ["html", "head"]
    assert parsed.starts("script") == []
    assert all(not name.startswith("on") for _, a in parsed.tags for name in a)
    return parsed


def content(**changes: Any) -> ReportContent:
    articles = (
        Article(
            "Good & new",
            "https://example.com/a?x=1&y=2",
            "Fine.",
            relevance=0.9,
            sentiment=0.6,
            sentiment_label="positive",
            source="Feed",
        ),
        Article(SCRIPT, "javascript:alert(1)", f"{SCRIPT} summary"),
        Article('quote" onmouseover="alert(1)', 'https://example.com/"onmouseover="alert(1)'),
        Article("plain"),
    )
    outline = (
        OutlineElement(
            "module",
            SCRIPT,
            "<img src=x onerror=alert(1)>",
            1,
            (
                OutlineElement(
                    "lesson", "Intro", "First.", 1, (OutlineElement("step", "Deep", "", 1),)
                ),
            ),
        ),
    )
    base = ReportContent(
        title=SCRIPT,
        method="non-llm:extractive-summary",
        topic="Space <b>",
        summary=("One.", "Two </p> <p>."),
        key_points=("<i>point</i>",),
        outline=outline,
        articles=articles,
        overview=Overview.of(articles, received=6, topic="space"),
    )
    return attrs.evolve(base, **changes)


def test_a_complete_well_formed_document() -> None:
    parsed = document(render_html(content()))
    assert parsed.starts("meta")[0] == {"charset": "utf-8"}
    assert {"http-equiv": "Content-Security-Policy", "content": CONTENT_SECURITY_POLICY} in (
        parsed.starts("meta")
    )
    assert parsed.texts["title"] == [SCRIPT]
    assert parsed.texts["h1"] == [SCRIPT]
    assert parsed.texts["h2"] == [
        "Executive summary",
        "Key points",
        "Overview",
        f"1. {SCRIPT}",
        "Sources",
    ]
    assert "".join(parsed.texts["style"]) == STYLESHEET
    # Nested outline: the grandchild's list sits inside the child's item.
    assert [t for t, _ in parsed.tags if t in ("ul", "li")][:4] == ["ul", "li", "ul", "li"]


def test_the_content_security_policy_allows_only_the_inline_stylesheet() -> None:
    digest = base64.b64encode(hashlib.sha256(STYLESHEET.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "script-src 'none'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY


def test_untrusted_text_is_never_markup() -> None:
    html = render_html(content())
    parsed = document(html)
    assert "<script" not in html
    assert "<img" not in html
    assert "<i>" not in html
    assert parsed.starts("img") == []
    assert parsed.starts("i") == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x onerror=alert(1)>" in "".join(parsed.texts["p"])
    assert "Two </p> <p>." in "".join(parsed.texts["p"])


def test_links_only_to_http_addresses_with_safe_rel() -> None:
    parsed = document(render_html(content()))
    anchors = parsed.starts("a")
    assert anchors == [
        {"href": "https://example.com/a?x=1&y=2", "rel": "noopener noreferrer"},
        {"href": 'https://example.com/"onmouseover="alert(1)', "rel": "noopener noreferrer"},
    ]
    html = render_html(content())
    assert 'href="javascript' not in html
    assert "javascript:alert(1) (not linked: not http/https)" in html


def test_optional_parts_are_left_out_and_the_summary_note_shown() -> None:
    html = render_html(
        content(summary=(), key_points=(), overview=None, articles=(), include_outline=False)
    )
    parsed = document(html)
    assert parsed.texts["h2"] == ["Executive summary"]
    assert parsed.texts["em"] == ["No text was available to summarise."]
    assert parsed.starts("ol") == []


def test_rendering_is_deterministic() -> None:
    assert render_html(content()) == render_html(content())
    assert render_html(content()).endswith("</html>\n")


def test_the_footer_names_a_model_method() -> None:
    parsed = document(render_html(content(method="llm:<model>")))
    assert parsed.texts["p"][-1].startswith("Method: llm:<model>. The executive summary")


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("a & b", "a &amp; b"),
        ("<x y='1'>", "&lt;x y=&#x27;1&#x27;&gt;"),
        ('"q"', "&quot;q&quot;"),
        ("line\nbreak\x00\u202e", "line break"),
    ],
)
def test_escape_html(text: str, escaped: str) -> None:
    assert escape_html(text) == escaped


@given(st.text(max_size=60), st.text(max_size=60))
def test_any_title_and_summary_read_back_as_that_text(title: str, summary: str) -> None:
    html = render_html(ReportContent(title=title, method="m", summary=(summary,)))
    parsed = document(html)
    shown = plain_text(title)
    assert parsed.texts.get("h1", [""]) == [shown or "Report"]
    if plain_text(summary):
        assert parsed.texts["p"][1] == plain_text(summary)
    html.encode("utf-8")
