"""Markdown rendering of reports, safe for untrusted text (pure; no I/O, no clock).

Every piece of text that came from input or from a model (titles, descriptions, summaries,
article fields, key points) is untrusted and passes through `escape_markdown`
(`aifactory.workers.text.escape`), so it renders as the text it is and never as structure:
it cannot start a heading, list, quote or code block, and cannot form a link, image,
emphasis, code span or raw HTML. Links are made only by the renderer, only to `http`/`https`
addresses (`safe_link_url`); any other address is shown as plain text. What is shown is the
`ReportContent` of `aifactory.workers.report.content`.

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

import re

import attrs

from ..text.escape import escape_markdown, safe_link_url
from ..text.keywords import tokenize
from .content import (
    Article,
    OutlineElement,
    ReportContent,
    metadata_parts,
    method_note,
    source_facts,
)

__all__ = ["RenderedReport", "render_report"]

_LINK_TARGET = re.compile(r"\]\(<[^>]*>\)")


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
