"""Report content and its Markdown rendering, safe for untrusted text (pure; no I/O, no clock).

`ReportContent` is what every format shows: Markdown here, HTML in `report_html`, and the
JSON document (`ReportContent.document`). The plain-text pieces both renderers share
(`metadata_parts`, `source_facts`, `Overview.items`, `method_note`) are built here,
unescaped; each renderer escapes them.

Every piece of text that came from input or from a model (titles, descriptions, summaries,
article fields, key points) is untrusted and passes through `escape_markdown`, so it renders
as the text it is and never as structure: it cannot start a heading, list, quote or code
block, and cannot form a link, image, emphasis, code span or raw HTML. Links are made only by
the renderer, only to `http`/`https` addresses (`safe_link_url`); any other address is shown
as plain text.

The layout of a report:

```
# <title>

Topic: ... · Structure: ... · Audience: ... · Sources: n

## Executive summary
<the summary sentences, or a note that there was no text>

## Key points                       (when a model gave some)
- <point>

## Overview                         (when articles were given)
- Articles: 3 shown of 5 received
- Publishing sources: 2
- Average sentiment: +0.12 (1 positive, 1 neutral, 1 negative)
- Top keywords: agents, pricing

## 1. <top-level element>          (one per element, when the outline is included)
<its description>
- **<child>** (<type>) — <description>
  - **<grandchild>** ...

## Sources                          (the shown articles, most relevant first)
1. [<title>](<https://...>) — Feed name, 2024-05-01 — relevance 0.9, sentiment positive (+0.60)
   <its summary>

---

<footer naming the method>
```
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

from ..protocol.codec import unstructure
from .keywords import rank_keywords, tokenize
from .term_match import terms

__all__ = [
    "Article",
    "OutlineElement",
    "Overview",
    "RenderedReport",
    "ReportContent",
    "escape_markdown",
    "metadata_parts",
    "method_note",
    "plain_text",
    "render_report",
    "safe_link_url",
    "source_facts",
]

# Characters that start inline structure anywhere in a line: escapes, code spans, emphasis,
# links and images, autolinks and HTML, entities, strikethrough, table cells, headings.
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>&~|#])")
# At the start of a line these begin a list, a setext underline or a thematic break.
_LEADING_MARKER = re.compile(r"^(?:([-+=])|(\d{1,9})([.)]))")
# Unicode bidirectional overrides can make displayed text differ from what it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_MAX_URL_LENGTH = 2048
_LINK_TARGET = re.compile(r"\]\(<[^>]*>\)")
_LABELS = ("positive", "neutral", "negative")
_TOP_KEYWORDS = 8


def plain_text(text: str) -> str:
    """`text` on one line: control characters become spaces, bidirectional overrides are
    dropped, lone surrogates become U+FFFD, and whitespace is collapsed.
    """
    visible = "".join(
        " "
        if unicodedata.category(c) == "Cc"
        else "\ufffd"
        if unicodedata.category(c) == "Cs"
        else c
        for c in text
        if c not in _BIDI_CONTROLS
    )
    return " ".join(visible.split())


def escape_markdown(text: str) -> str:
    """`text` as inline Markdown that renders as exactly that text (whitespace collapsed).

    Line breaks and control characters become spaces, Markdown punctuation is
    backslash-escaped, and a leading list marker, `=` or `+` is escaped too.
    """
    escaped = _INLINE_SPECIAL.sub(r"\\\1", plain_text(text))
    match = _LEADING_MARKER.match(escaped)
    if match is None:
        return escaped
    if match.group(1):
        return "\\" + escaped
    return f"{match.group(2)}\\{escaped[len(match.group(2)) :]}"


def safe_link_url(url: str) -> str | None:
    """`url` if it may be rendered as a link: an absolute `http`/`https` address with a host,
    at most 2048 characters, with no whitespace, control characters, `<`, `>` or `\\`;
    otherwise `None`.
    """
    if not url or len(url) > _MAX_URL_LENGTH:
        return None
    if any(c in "<>\\" or c.isspace() or unicodedata.category(c) in ("Cc", "Cs") for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


@attrs.frozen
class OutlineElement:
    """One element of a structure outline, with its children."""

    type: str
    title: str
    description: str
    order: int
    children: tuple[OutlineElement, ...] = ()


@attrs.frozen
class Article:
    """One source article and its classification, if any.

    `relevance` is in [0, 1] and `sentiment` in [-1, 1] when known; `sentiment_label` is the
    classifier's label (`positive`, `neutral`, `negative`) or any text the input gave.
    """

    title: str
    url: str = ""
    summary: str = ""
    relevance: float | None = None
    sentiment: float | None = None
    sentiment_label: str = ""
    published: str = ""
    source: str = ""
    source_url: str = ""
    id: str = ""


@attrs.frozen
class Overview:
    """Counts over the articles: how many were received and shown, from how many publishing
    sources, their average sentiment and labels, and their most frequent words.

    Everything but `received` is over the shown articles.
    """

    received: int
    shown: int
    sources: int
    average_sentiment: float | None
    positive: int
    neutral: int
    negative: int
    top_keywords: tuple[str, ...]

    @classmethod
    def of(cls, articles: Sequence[Article], received: int, topic: str = "") -> Overview:
        """The overview of the shown `articles` out of `received` (deterministic).

        Sources are told apart by `source_url`, else `source` (case-folded); the average is
        rounded to 4 decimals; keywords come from titles and summaries, the topic's words
        (and their singular forms, `aifactory.workers.term_match`) left out
        (`aifactory.workers.keywords.rank_keywords`).
        """
        origins = {(a.source_url or a.source).casefold() for a in articles} - {""}
        scores = [a.sentiment for a in articles if a.sentiment is not None]
        labels = [a.sentiment_label.casefold() for a in articles]
        text = "\n".join(part for a in articles for part in (a.title, a.summary))
        average = round(math.fsum(scores) / len(scores), 4) if scores else None
        exclude = [*tokenize(topic), *terms(topic)]
        return cls(
            received=received,
            shown=len(articles),
            sources=len(origins),
            average_sentiment=average,
            positive=labels.count("positive"),
            neutral=labels.count("neutral"),
            negative=labels.count("negative"),
            top_keywords=tuple(rank_keywords(text, _TOP_KEYWORDS, exclude=exclude)),
        )

    def items(self) -> list[tuple[str, str]]:
        """The overview as (label, plain text) pairs, in display order."""
        counts = ", ".join(f"{getattr(self, name)} {name}" for name in _LABELS)
        average = "n/a" if self.average_sentiment is None else f"{self.average_sentiment:+.2f}"
        return [
            ("Articles", f"{self.shown} shown of {self.received} received"),
            ("Publishing sources", str(self.sources)),
            ("Average sentiment", f"{average} ({counts})"),
            ("Top keywords", ", ".join(self.top_keywords) or "none"),
        ]


@attrs.frozen
class ReportContent:
    """Everything a report shows; all text is untrusted and escaped when rendered.

    `articles` are the shown ones, in display order; `overview` is `None` when the report was
    given no articles.
    """

    title: str
    method: str
    topic: str = ""
    structure_type: str = ""
    granularity: int | None = None
    audience: str = ""
    summary: tuple[str, ...] = ()
    key_points: tuple[str, ...] = ()
    outline: tuple[OutlineElement, ...] = ()
    articles: tuple[Article, ...] = ()
    overview: Overview | None = None
    include_outline: bool = True

    def document(self) -> dict[str, Any]:
        """The content as a JSON-compatible document (`report.json`), keys in a fixed order:

        `{"document": "aifactory.report", "version": 1, "title", "topic", "structure":
        {"type", "granularity", "audience"}, "method", "summary": [...], "key_points": [...],
        "overview": {"received", "shown", "sources", "average_sentiment", "positive",
        "neutral", "negative", "top_keywords"} or null, "sections": [{"type", "title",
        "description", "order", "children": [...]}] (empty without the outline), "sources":
        [{"title", "url", "summary", "relevance", "sentiment", "sentiment_label",
        "published", "source", "source_url", "id", "linkable"}]}`. Texts are as given
        (unescaped); `linkable` says whether `url` passes `safe_link_url`.
        """
        return {
            "document": "aifactory.report",
            "version": 1,
            "title": self.title,
            "topic": self.topic,
            "structure": {
                "type": self.structure_type,
                "granularity": self.granularity,
                "audience": self.audience,
            },
            "method": self.method,
            "summary": list(self.summary),
            "key_points": list(self.key_points),
            "overview": unstructure(self.overview) if self.overview else None,
            "sections": [unstructure(e) for e in self.outline] if self.include_outline else [],
            "sources": [
                {**unstructure(a), "linkable": safe_link_url(a.url) is not None}
                for a in self.articles
            ],
        }


@attrs.frozen
class RenderedReport:
    """A rendered report and facts about it.

    `word_count` counts the words of the text (link addresses not counted); `section_count`
    the level-2 sections; `omitted_links` the article addresses shown as text, not links.
    """

    markdown: str
    section_count: int
    word_count: int
    omitted_links: int


def metadata_parts(content: ReportContent) -> list[str]:
    """The report's metadata line as plain-text parts (topic, structure, audience, sources)."""
    parts = []
    if content.topic:
        parts.append(f"Topic: {content.topic}")
    if content.structure_type:
        level = f", granularity {content.granularity}" if content.granularity else ""
        parts.append(f"Structure: {content.structure_type}{level}")
    if content.audience:
        parts.append(f"Audience: {content.audience}")
    parts.append(f"Sources: {len(content.articles)}")
    return parts


def source_facts(article: Article) -> tuple[str, str]:
    """Plain text about a source: where and when it was published, and its classification
    (`relevance 0.9, sentiment positive (+0.60)`); either may be empty.
    """
    origin = ", ".join(part for part in (article.source, article.published) if part)
    facts = []
    if article.relevance is not None:
        facts.append(f"relevance {round(article.relevance, 3):g}")
    if article.sentiment_label or article.sentiment is not None:
        score = f"({article.sentiment:+.2f})" if article.sentiment is not None else ""
        facts.append(" ".join(p for p in ("sentiment", article.sentiment_label, score) if p))
    return origin, ", ".join(facts)


def method_note(method: str) -> str:
    """The footer sentence that says how the summary was made (plain text)."""
    if method.startswith("llm:"):
        return (
            f"Method: {method}. The executive summary and key points were written by a "
            "language model from the titles and summaries shown; check them against the sources."
        )
    return (
        f"Method: {method}. The executive summary keeps the sentences whose words are most "
        "frequent in the supplied text; no language model was used."
    )


def _outline_items(elements: tuple[OutlineElement, ...], depth: int) -> list[str]:
    lines = []
    for element in elements:
        # Two spaces per level: a nested list item must start under its parent's content.
        text = f"{'  ' * depth}- **{escape_markdown(element.title)}**"
        if element.type:
            text += f" ({escape_markdown(element.type)})"
        if element.description:
            text += f" — {escape_markdown(element.description)}"
        lines.append(text)
        lines.extend(_outline_items(element.children, depth + 1))
    return lines


def _source_lines(number: int, article: Article) -> tuple[list[str], bool]:
    """The numbered Sources entry (its summary on a continuation line of the same item), and
    whether an address was refused as a link.
    """
    title = escape_markdown(article.title)
    url = safe_link_url(article.url)
    omitted = bool(article.url) and url is None
    if url is not None:
        text = f"{number}. [{title}](<{url}>)"
    elif omitted:
        text = f"{number}. {title} — {escape_markdown(article.url)} (not linked: not http/https)"
    else:
        text = f"{number}. {title}"
    parts = [escape_markdown(part) for part in source_facts(article) if part]
    lines = [" — ".join([text, *parts])]
    if article.summary:
        # Indented under the item's content: the same list item, never a new block.
        lines.append(f"{' ' * len(f'{number}. ')}{escape_markdown(article.summary)}")
    return lines, omitted


def render_report(content: ReportContent) -> RenderedReport:
    """Render `content` as Markdown (layout in the module docstring).

    Deterministic: equal content gives byte-identical Markdown; nothing depends on the clock.
    """
    metadata = " · ".join(escape_markdown(part) for part in metadata_parts(content))
    lines = [f"# {escape_markdown(content.title) or 'Report'}", "", metadata, ""]
    sections = 0

    def section(heading: str, body: list[str]) -> None:
        nonlocal sections
        sections += 1
        lines.extend([f"## {heading}", "", *body])

    summary = escape_markdown(" ".join(content.summary))
    section("Executive summary", [summary or "*No text was available to summarise.*", ""])
    if content.key_points:
        section("Key points", [*(f"- {escape_markdown(p)}" for p in content.key_points), ""])
    if content.overview is not None:
        items = content.overview.items()
        section("Overview", [*(f"- {escape_markdown(f'{k}: {v}')}" for k, v in items), ""])
    if content.include_outline:
        for element in content.outline:
            body = [escape_markdown(element.description), ""] if element.description else []
            children = _outline_items(element.children, 0)
            section(
                f"{element.order}. {escape_markdown(element.title)}",
                [*body, *children, ""] if children else body,
            )
    omitted = 0
    if content.articles:
        entries = []
        for number, article in enumerate(content.articles, 1):
            item, refused = _source_lines(number, article)
            entries.extend(item)
            omitted += refused
        section("Sources", [*entries, ""])
    lines.extend(["---", "", f"*{escape_markdown(method_note(content.method))}*"])
    markdown = "\n".join(lines) + "\n"
    words = len(tokenize(_LINK_TARGET.sub("]", markdown)))
    return RenderedReport(markdown, sections, words, omitted)
