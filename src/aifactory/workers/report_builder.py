"""`ReportBuilder`: a report in Markdown, HTML and/or JSON from articles, a structure and a request.

Action `build_report`. Inputs: `structure` (a content granulator output), `articles` (the
content classifier's: `id`, `title`, `url`, `summary`, `published`, `source`, `source_url`,
`relevance` 0-1, `sentiment` -1..1, `sentiment_label`; all optional), `topic`, `title`,
`description` and `request` (`title`, `description`); at least one of structure, articles,
topic or title. Params (see `ReportBuilder.defaults`):

- `format`: `"markdown"`, `"html"`, `"json"`, a list of them, or `"all"`; one artifact each,
  in the order given (`"all"`: that order): `report.md`, `report.html`, `report.json`;
- `include_outline` (bool), `max_summary_sentences` (1-50);
- `min_relevance` (0-1) and `max_sources` (0-1000): the shown articles are those with at
  least `min_relevance` (an article without a relevance is shown only when it is 0), most
  relevant first (ties and unscored articles keep their input order, unscored last), at most
  `max_sources` of them. The summary and the overview draw on the shown articles only.

The executive summary: without a language model, the documented non-LLM method
`non-llm:extractive-summary` (`aifactory.workers.summarize`) over the request description
and the shown articles' summaries (the structure's descriptions only when those have none;
see `ReportJob.summary_texts`); with one, `llm:<model>` writes the summary and key points
(`aifactory.workers.report_llm`), and a reply that fails its checks fails the stage.

Output (`ref` is the stored `StorageRef` in its JSON form, `summary` plain unescaped text;
`word_count` and `section_count` are counted on the Markdown rendering, `overview` is `null`
when no articles were given):

```
{"title", "format": <the first format>, "formats": [...],
 "artifacts": [{"type": "report", "name": "report.md", "media_type", "ref"}, ...],
 "word_count", "section_count", "summary", "key_points": [...],
 "overview": {"received", "shown", "sources", "average_sentiment", "positive", "neutral",
              "negative", "top_keywords"},
 "method"}
```

`report.json` is `ReportContent.document()` (`aifactory.workers.report_markdown`). Every
format is deterministic: the same inputs (and model reply) give byte-identical artifacts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from .._exceptions import BadInputError
from ..protocol.codec import unstructure
from ..protocol.messages import ResourceEstimate, StageSummary
from .base import ModelWorker, WorkerContext, WorkerInfo, WorkerResult
from .model_calls import LLMTally, llm_method
from .report_html import render_html
from .report_llm import MAX_KEY_POINTS, SummaryRequest, model_summary
from .report_markdown import (
    Article,
    OutlineElement,
    Overview,
    RenderedReport,
    ReportContent,
    render_report,
)
from .sentiment import label
from .summarize import METHOD, extractive_summary

__all__ = [
    "ARTIFACTS",
    "FORMATS",
    "MEDIA_TYPE",
    "ReportBuilder",
    "ReportFile",
    "ReportJob",
    "extractive_content",
    "render_files",
]

FORMATS = ("markdown", "html", "json")
ARTIFACTS: Mapping[str, tuple[str, str]] = {
    "markdown": ("report.md", "text/markdown; charset=utf-8"),
    "html": ("report.html", "text/html; charset=utf-8"),
    "json": ("report.json", "application/json"),
}
MEDIA_TYPE = ARTIFACTS["markdown"][1]
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
        described in the module docstring). Raises `BadInputError` naming the offending field.
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


def extractive_content(job: ReportJob) -> ReportContent:
    """The report content with the non-LLM extractive summary (pure and deterministic)."""
    primary, fallback = job.summary_texts()
    sentences = job.max_summary_sentences
    summary = extractive_summary(primary, sentences) or extractive_summary(fallback, sentences)
    return job.content(summary, (), METHOD)


@attrs.frozen
class ReportFile:
    """One rendered report file, ready to store as an artifact."""

    format: str
    name: str
    media_type: str
    data: bytes


def render_files(
    content: ReportContent, formats: Sequence[str]
) -> tuple[RenderedReport, list[ReportFile]]:
    """The Markdown rendering (for its counts) and one file per format, in order."""
    rendered = render_report(content)
    files = []
    for fmt in formats:
        if fmt == "markdown":
            text = rendered.markdown
        elif fmt == "html":
            text = render_html(content)
        else:
            text = json.dumps(content.document(), ensure_ascii=False, indent=2) + "\n"
        name, media_type = ARTIFACTS[fmt]
        files.append(ReportFile(fmt, name, media_type, text.encode("utf-8")))
    return rendered, files


class ReportBuilder(ModelWorker[ReportJob]):
    """Builds a report (action `build_report`) in Markdown, HTML and/or JSON; see the module
    docstring. With `llm`, the model writes the executive summary and key points.

    Deterministic: the same inputs (and model replies) give byte-identical artifacts.
    Reports progress at 10, 30, (60 with a model,) 80 and 100 %.
    """

    info: ClassVar[WorkerInfo] = WorkerInfo(
        name="report_builder",
        description="Markdown, HTML and JSON reports from a structure and classified "
        "articles, with an executive summary (extractive, or by a language model).",
        actions=("build_report",),
        slots=8,
        memory_mb=64,
        version="2",
    )
    defaults: ClassVar[Mapping[str, Any]] = {
        "format": "markdown",
        "include_outline": True,
        "max_summary_sentences": 5,
        "min_relevance": 0.0,
        "max_sources": 20,
    }

    job_type = ReportJob

    def estimate(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> ResourceEstimate:
        """Without a model no tokens, and time grows with the text to summarise; with one,
        tokens for the one summary call. Raises `BadInputError` for unusable inputs or params.
        """
        job = self.job(inputs, params)
        if self.llm is not None:
            return ResourceEstimate(
                prompt_tokens=100 + job.summary_request().prompt_chars() // 4,
                completion_tokens=60 * (job.max_summary_sentences + MAX_KEY_POINTS),
                duration_ms=5_000,
                memory_mb=self.info.memory_mb,
            )
        primary, fallback = job.summary_texts()
        text = sum(len(t) for t in [*primary, *fallback])
        return ResourceEstimate(duration_ms=10 + text // 20_000, memory_mb=self.info.memory_mb)

    async def process(
        self,
        action: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        ctx: WorkerContext,
    ) -> WorkerResult:
        """Build and store the report. Raises `BadInputError` for unusable input and
        `StageFailedError` when the model fails or its reply fails the checks.
        """
        await ctx.progress(10, "checking input")
        # Checked again here: a caller may process without a handshake (embedded use).
        job = self.checked_job(action, inputs, params)
        tally = LLMTally()
        await ctx.progress(30, "summarising")
        if self.llm is None:
            content = extractive_content(job)
            notes = ["no LLM configured: executive summary extracted by word-frequency ranking"]
        else:
            reply = await model_summary(self.llm, job.summary_request(), tally)
            content = job.content(reply.summary, reply.key_points, llm_method(self.llm))
            notes = []
            await ctx.progress(60, "summary written by the model")
        rendered, files = render_files(content, job.formats)
        artifacts = []
        for file in files:
            ref = ctx.store_artifact(file.data, name=file.name, media_type=file.media_type)
            entry = {"type": "report", "name": file.name, "media_type": file.media_type}
            artifacts.append({**entry, "ref": unstructure(ref)})
        await ctx.progress(80, f"{len(files)} report file(s) stored")
        if rendered.omitted_links:
            notes.append(f"{rendered.omitted_links} source address(es) not linked: not http(s)")
        if hidden := job.articles_received - len(job.articles):
            notes.append(f"{hidden} article(s) not shown: below min_relevance or over max_sources")
        output = {
            "title": job.title,
            "format": job.formats[0],
            "formats": list(job.formats),
            "artifacts": artifacts,
            "word_count": rendered.word_count,
            "section_count": rendered.section_count,
            "summary": " ".join(content.summary),
            "key_points": list(content.key_points),
            "overview": unstructure(content.overview) if content.overview else None,
            "method": content.method,
        }
        # Bytes and compute time are measured by the host; tokens and LLM cost are ours.
        summary = StageSummary(
            method=content.method, usage=tally.usage, cost=tally.cost, notes=tuple(notes)
        )
        await ctx.progress(100, "done")
        return WorkerResult(output=output, summary=summary)
