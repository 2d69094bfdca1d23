"""Report content: what every report format shows, and the plain-text pieces they share (pure).

`ReportContent` is read from a stage's inputs by `aifactory.workers.report.job`; it is
rendered as Markdown (`aifactory.workers.report.markdown_render`), as HTML
(`aifactory.workers.report.html_render`) and as the JSON document (`ReportContent.document`).
The plain-text pieces both renderers share (`metadata_parts`, `source_facts`,
`Overview.items`, `method_note`) are built here, unescaped: all text in a report is untrusted
and each renderer escapes it (`aifactory.workers.text.escape`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from ...protocol.codec import unstructure
from ..text.escape import safe_link_url
from ..text.keywords import rank_keywords, tokenize
from ..text.term_match import terms

__all__ = [
    "Article",
    "OutlineElement",
    "Overview",
    "ReportContent",
    "metadata_parts",
    "method_note",
    "source_facts",
]

_LABELS = ("positive", "neutral", "negative")
_TOP_KEYWORDS = 8


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
        (and their singular forms, `aifactory.workers.text.term_match`) left out
        (`aifactory.workers.text.keywords.rank_keywords`).
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
