"""Markdown rendering of reports, safe for untrusted text (pure; no I/O, no clock).

Every piece of text that came from input (titles, descriptions, summaries, article fields) is
treated as untrusted and passes through `escape_markdown`, so it renders as the text it is
and never as structure: it cannot start a heading, list, quote or code block, and cannot form
a link, image, emphasis, code span or raw HTML. Links are made only by the renderer, only to
`http`/`https` addresses (`safe_link_url`); any other address is shown as plain text.

The layout of a report:

```
# <title>

Topic: ... · Structure: ... · Audience: ... · Sources: n

## Executive summary
<the summary sentences, or a note that there was no text>

## 1. <top-level element>          (one per element, when the outline is included)
<its description>
- **<child>** (<type>) — <description>
  - **<grandchild>** ...

## Sources                          (when articles are given)
1. [<title>](<https://...>) — relevance 0.9, sentiment positive

---

<footer naming the method>
```
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

import attrs

from .keywords import tokenize

__all__ = [
    "Article",
    "OutlineElement",
    "RenderedReport",
    "ReportContent",
    "escape_markdown",
    "render_report",
    "safe_link_url",
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


def _plain(text: str) -> str:
    # One line, no control characters: untrusted text cannot open or close a block.
    visible = "".join(
        " " if unicodedata.category(c) == "Cc" else c for c in text if c not in _BIDI_CONTROLS
    )
    return " ".join(visible.split())


def escape_markdown(text: str) -> str:
    """`text` as inline Markdown that renders as exactly that text (whitespace collapsed).

    Line breaks and control characters become spaces, Markdown punctuation is
    backslash-escaped, and a leading list marker, `=` or `+` is escaped too.
    """
    escaped = _INLINE_SPECIAL.sub(r"\\\1", _plain(text))
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
    if any(c in "<>\\" or c.isspace() or unicodedata.category(c) == "Cc" for c in url):
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
    """One source article: title, address, summary and its classification, if any."""

    title: str
    url: str = ""
    summary: str = ""
    relevance: float | None = None
    sentiment: str | None = None


@attrs.frozen
class ReportContent:
    """Everything a report shows; all text is untrusted and escaped when rendered."""

    title: str
    method: str
    topic: str = ""
    structure_type: str = ""
    granularity: int | None = None
    audience: str = ""
    summary: tuple[str, ...] = ()
    outline: tuple[OutlineElement, ...] = ()
    articles: tuple[Article, ...] = ()
    include_outline: bool = True


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


def _metadata(content: ReportContent) -> str:
    parts = []
    if content.topic:
        parts.append(f"Topic: {escape_markdown(content.topic)}")
    if content.structure_type:
        level = f", granularity {content.granularity}" if content.granularity else ""
        parts.append(f"Structure: {escape_markdown(content.structure_type)}{level}")
    if content.audience:
        parts.append(f"Audience: {escape_markdown(content.audience)}")
    parts.append(f"Sources: {len(content.articles)}")
    return " · ".join(parts)


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


def _source_line(number: int, article: Article) -> tuple[str, bool]:
    """The numbered Sources entry, and whether an address was refused as a link."""
    title = escape_markdown(article.title)
    url = safe_link_url(article.url)
    omitted = bool(article.url) and url is None
    if url is not None:
        text = f"{number}. [{title}](<{url}>)"
    elif omitted:
        text = f"{number}. {title} — {escape_markdown(article.url)} (not linked: not http/https)"
    else:
        text = f"{number}. {title}"
    facts = []
    if article.relevance is not None:
        facts.append(f"relevance {round(article.relevance, 3):g}")
    if article.sentiment:
        facts.append(f"sentiment {escape_markdown(article.sentiment)}")
    return (f"{text} — {', '.join(facts)}" if facts else text), omitted


def render_report(content: ReportContent) -> RenderedReport:
    """Render `content` as Markdown (layout in the module docstring).

    Deterministic: equal content gives byte-identical Markdown; nothing depends on the clock.
    """
    lines = [f"# {escape_markdown(content.title) or 'Report'}", "", _metadata(content), ""]
    sections = 0

    def section(heading: str, body: list[str]) -> None:
        nonlocal sections
        sections += 1
        lines.extend([f"## {heading}", "", *body])

    summary = escape_markdown(" ".join(content.summary))
    section("Executive summary", [summary or "*No text was available to summarise.*", ""])
    if content.include_outline:
        for element in content.outline:
            body = [escape_markdown(element.description), ""] if element.description else []
            items = _outline_items(element.children, 0)
            section(
                f"{element.order}. {escape_markdown(element.title)}",
                [*body, *items, ""] if items else body,
            )
    omitted = 0
    if content.articles:
        entries = []
        for number, article in enumerate(content.articles, 1):
            line, refused = _source_line(number, article)
            entries.append(line)
            omitted += refused
        section("Sources", [*entries, ""])
    lines.extend(
        [
            "---",
            "",
            f"*Method: {content.method}. The executive summary keeps the sentences whose words "
            "are most frequent in the supplied text; no language model was used.*",
        ]
    )
    markdown = "\n".join(lines) + "\n"
    words = len(tokenize(_LINK_TARGET.sub("]", markdown)))
    return RenderedReport(markdown, sections, words, omitted)
