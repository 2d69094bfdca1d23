"""`ReportJob`: the report builder's stage inputs and params, read and checked.

Everything a client sends the report builder (a structure, classified articles, a request,
the format and summary params; described in `aifactory.workers.report.builder`) is untrusted
JSON. `ReportJob.from_stage` reads it into typed values (`OutlineElement`, `Article`),
bounding text length, list sizes and nesting depth, and picks the articles the report shows;
the worker then summarises and renders. Kept apart from the worker so the checking can be
read, and tested, on its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..._exceptions import BadInputError
from ..text.sentiment import label
from .content import Article, OutlineElement, Overview, ReportContent
from .llm_summary import SummaryRequest

__all__ = ["FORMATS", "ReportJob"]

FORMATS = ("markdown", "html", "json", "pdf")
_MAX_TEXT = 20_000
_MAX_ELEMENTS = 10_000
_MAX_DEPTH = 12
_MAX_ARTICLES = 1_000
_MAX_SENTENCES = 50
_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: object, path: str, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadInputError(f"{path} must be text", details={"field": path})
    if len(value) > _MAX_TEXT:
        raise BadInputError(
            f"{path} is longer than {_MAX_TEXT} characters", details={"field": path}
        )
    # A lone surrogate (legal in JSON text) could not be encoded as UTF-8 later.
    return " ".join(_SURROGATE.sub("\ufffd", value).split()) or default


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadInputError(f"{path} must be an object", details={"field": path})
    return value


def _list(value: object, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadInputError(f"{path} must be a list", details={"field": path})
    return value


def _number(value: object, path: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise BadInputError(
            f"{path} must be a number from {low:g} to {high:g}", details={"field": path}
        )
    return float(value)


def _integer(value: object, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInputError(f"{path} must be an integer from {low} to {high}")
    return value


def _formats(value: object) -> tuple[str, ...]:
    items = list(FORMATS) if value == "all" else [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or any(f not in FORMATS for f in items):
        raise BadInputError(
            f"report format {value!r} is not available; supported: {', '.join(FORMATS)}, "
            "a list of them, or 'all'",
            details={"format": repr(value)[:80], "supported": list(FORMATS)},
        )
    return tuple(dict.fromkeys(items))


@attrs.define
class _OutlineReader:
    """Reads structure elements into `OutlineElement`s, bounding size and depth."""

    seen: int = 0

    def elements(self, value: object, path: str, depth: int) -> tuple[OutlineElement, ...]:
        items = _list(value, path)
        if items and depth > _MAX_DEPTH:
            raise BadInputError(f"structure nests deeper than {_MAX_DEPTH} levels")
        self.seen += len(items)
        if self.seen > _MAX_ELEMENTS:
            raise BadInputError(f"structure has more than {_MAX_ELEMENTS} elements")
        return tuple(self.element(item, f"{path}[{i}]", i, depth) for i, item in enumerate(items))

    def element(self, value: object, path: str, index: int, depth: int) -> OutlineElement:
        item = _mapping(value, path)
        order = item.get("order", index + 1)
        if isinstance(order, bool) or not isinstance(order, int):
            raise BadInputError(f"{path}.order must be an integer", details={"field": path})
        return OutlineElement(
            type=_text(item.get("type"), f"{path}.type"),
            title=_text(item.get("title"), f"{path}.title", "Untitled"),
            description=_text(item.get("description"), f"{path}.description"),
            order=order,
            children=self.elements(item.get("children"), f"{path}.children", depth + 1),
        )


def _article(value: object, path: str) -> Article:
    item = _mapping(value, path)
    url = _text(item.get("url"), f"{path}.url")
    raw = item.get("sentiment")
    sentiment, implied = None, ""
    if isinstance(raw, str):  # older inputs gave the label here
        implied = _text(raw, f"{path}.sentiment")
    else:
        sentiment = _number(raw, f"{path}.sentiment", -1.0, 1.0)
        implied = label(sentiment) if sentiment is not None else ""
    ident = item.get("id")
    if isinstance(ident, int) and not isinstance(ident, bool):
        ident = str(ident)
    return Article(
        title=_text(item.get("title"), f"{path}.title", url or "Untitled source"),
        url=url,
        summary=_text(item.get("summary"), f"{path}.summary"),
        relevance=_number(item.get("relevance"), f"{path}.relevance", 0.0, 1.0),
        sentiment=sentiment,
        sentiment_label=_text(item.get("sentiment_label"), f"{path}.sentiment_label") or implied,
        published=_text(item.get("published"), f"{path}.published"),
        source=_text(item.get("source"), f"{path}.source"),
        source_url=_text(item.get("source_url"), f"{path}.source_url"),
        id=_text(ident, f"{path}.id"),
    )


def _shown(articles: Sequence[Article], least: float, limit: int) -> tuple[Article, ...]:
    # sorted() is stable: equal relevances keep their input order; unscored ones go last.
    ranked = sorted(articles, key=lambda a: 1.0 if a.relevance is None else -a.relevance)
    kept = [a for a in ranked if least == 0 or (a.relevance is not None and a.relevance >= least)]
    return tuple(kept[:limit])


def _walk(elements: tuple[OutlineElement, ...]) -> list[str]:
    texts = []
    for element in elements:
        texts.append(element.description)
        texts.extend(_walk(element.children))
    return texts


@attrs.frozen
class ReportJob:
    """A checked report job: what the report shows, in which formats, how it is summarised.

    `articles` are the shown articles (filtered and sorted); `articles_received` counts all.
    """

    title: str
    topic: str = ""
    description: str = ""
    structure_type: str = ""
    granularity: int | None = None
    audience: str = ""
    outline: tuple[OutlineElement, ...] = ()
    articles: tuple[Article, ...] = ()
    articles_received: int = 0
    formats: tuple[str, ...] = ("markdown",)
    include_outline: bool = True
    max_summary_sentences: int = 5

    @classmethod
    def from_stage(cls, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> ReportJob:
        """Check stage `inputs` and `params` (already merged over the worker's defaults; both
        described in the `aifactory.workers.report.builder` module docstring). Raises
        `BadInputError` naming the offending field.
        """
        formats = _formats(params.get("format"))
        include_outline = params.get("include_outline")
        if not isinstance(include_outline, bool):
            raise BadInputError("include_outline must be true or false")
        sentences = _integer(
            params.get("max_summary_sentences"), "max_summary_sentences", 1, _MAX_SENTENCES
        )
        least = _number(params.get("min_relevance"), "min_relevance", 0.0, 1.0)
        if least is None:
            raise BadInputError("min_relevance must be a number from 0 to 1")
        limit = _integer(params.get("max_sources"), "max_sources", 0, _MAX_ARTICLES)
        raw = inputs.get("structure")
        structure = _mapping(raw, "structure") if raw is not None else {}
        granularity = structure.get("granularity")
        if isinstance(granularity, bool) or not isinstance(granularity, int):
            granularity = None
        raw_request = inputs.get("request")
        request = _mapping(raw_request, "request") if raw_request is not None else {}
        articles = _list(inputs.get("articles"), "articles")
        if len(articles) > _MAX_ARTICLES:
            raise BadInputError(f"more than {_MAX_ARTICLES} articles")
        topic = _text(inputs.get("topic"), "topic")
        title = _text(inputs.get("title"), "title")
        if not (structure or articles or topic or title):
            raise BadInputError(
                "a report needs at least one of: structure, articles, topic or title",
                details={"fields": ["structure", "articles", "topic", "title"]},
            )
        request_title = _text(request.get("title"), "request.title")
        structure_title = _text(structure.get("title"), "structure.title")
        structure_topic = _text(structure.get("topic"), "structure.topic")
        read = [_article(a, f"articles[{i}]") for i, a in enumerate(articles)]
        return cls(
            title=title or request_title or structure_title or topic or "Report",
            topic=topic or structure_topic or request_title,
            description=_text(inputs.get("description"), "description")
            or _text(request.get("description"), "request.description"),
            structure_type=_text(structure.get("structure_type"), "structure.structure_type"),
            granularity=granularity,
            audience=_text(structure.get("target_audience"), "structure.target_audience"),
            outline=_OutlineReader().elements(structure.get("elements"), "structure.elements", 1),
            articles=_shown(read, least, limit),
            articles_received=len(read),
            formats=formats,
            include_outline=include_outline,
            max_summary_sentences=sentences,
        )

    def summary_texts(self) -> tuple[list[str], list[str]]:
        """What the extractive summary draws on: first the request description and the shown
        articles' summaries; then, only if those have no usable sentence, the structure's
        descriptions (in tree order).

        Structure descriptions come second because without an LLM they are template phrases:
        their repeated words would outscore any real content in a word-frequency ranking,
        and the outline sections show them anyway.
        """
        primary = [self.description, *(article.summary for article in self.articles)]
        return primary, _walk(self.outline)

    def summary_request(self) -> SummaryRequest:
        """What a language model is asked to summarise."""
        fields = (self.title, self.topic, self.description, self.structure_type, self.audience)
        return SummaryRequest(*fields, self.outline, self.articles, self.max_summary_sentences)

    def content(
        self, summary: Sequence[str], key_points: Sequence[str], method: str
    ) -> ReportContent:
        """The report's content with this summary and these key points, made by `method`."""
        overview = (
            Overview.of(self.articles, self.articles_received, self.topic)
            if self.articles_received
            else None
        )
        return ReportContent(
            title=self.title,
            method=method,
            topic=self.topic,
            structure_type=self.structure_type,
            granularity=self.granularity,
            audience=self.audience,
            summary=tuple(summary),
            key_points=tuple(key_points),
            outline=self.outline,
            articles=self.articles,
            overview=overview,
            include_outline=self.include_outline,
        )
