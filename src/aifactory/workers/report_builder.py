"""`ReportBuilder`: a Markdown report from a structure, classified articles and a request.

Without a language model it uses the documented non-LLM method `non-llm:extractive-summary`
(see `aifactory.workers.summarize`) for the executive summary, drawn from the request
description and article summaries (the structure's descriptions only when those have none;
see `ReportJob.summary_texts`), renders the report with
`aifactory.workers.report_markdown`, stores it as the artifact `report.md`, and returns:

```
{"title", "format": "markdown",
 "artifacts": [{"type": "report", "name": "report.md", "media_type", "ref"}],
 "word_count", "section_count", "summary", "method"}
```

`ref` is the stored `StorageRef` in its JSON form (`aifactory.protocol.codec.unstructure`);
`summary` is the executive summary as plain (unescaped) text. Only `format="markdown"` exists
for now; HTML and JSON reports come with the AI workers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from .._exceptions import BadInputError
from ..models.execution import Usage
from ..protocol.codec import unstructure
from ..protocol.messages import ResourceEstimate, StageSummary
from .base import Worker, WorkerContext, WorkerInfo, WorkerResult
from .report_markdown import Article, OutlineElement, RenderedReport, ReportContent, render_report
from .summarize import METHOD, extractive_summary

__all__ = ["FORMATS", "MEDIA_TYPE", "ReportBuilder", "ReportJob", "build_report"]

FORMATS = ("markdown",)
MEDIA_TYPE = "text/markdown; charset=utf-8"
_MAX_TEXT = 20_000
_MAX_ELEMENTS = 10_000
_MAX_DEPTH = 12
_MAX_ARTICLES = 1_000
_MAX_SENTENCES = 50


def _text(value: object, path: str, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadInputError(f"{path} must be text", details={"field": path})
    if len(value) > _MAX_TEXT:
        raise BadInputError(
            f"{path} is longer than {_MAX_TEXT} characters", details={"field": path}
        )
    return " ".join(value.split()) or default


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


def _number(value: object, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadInputError(f"{path} must be a finite number", details={"field": path})
    return float(value)


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
    sentiment = item.get("sentiment")
    if sentiment is not None and not isinstance(sentiment, str):
        sentiment = f"{_number(sentiment, f'{path}.sentiment'):g}"
    return Article(
        title=_text(item.get("title"), f"{path}.title", url or "Untitled source"),
        url=url,
        summary=_text(item.get("summary"), f"{path}.summary"),
        relevance=_number(item.get("relevance"), f"{path}.relevance"),
        sentiment=_text(sentiment, f"{path}.sentiment") or None,
    )


def _walk(elements: tuple[OutlineElement, ...]) -> list[str]:
    texts = []
    for element in elements:
        texts.append(element.description)
        texts.extend(_walk(element.children))
    return texts


@attrs.frozen
class ReportJob:
    """A checked report job: what the report shows and how it is summarised."""

    title: str
    topic: str = ""
    description: str = ""
    structure_type: str = ""
    granularity: int | None = None
    audience: str = ""
    outline: tuple[OutlineElement, ...] = ()
    articles: tuple[Article, ...] = ()
    include_outline: bool = True
    max_summary_sentences: int = 5

    @classmethod
    def from_stage(cls, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> ReportJob:
        """Check stage `inputs` and `params` (already merged over the worker's defaults).

        Inputs: `structure` (a granulator output), `articles` (objects with `title`, `url`,
        `summary`, `relevance`, `sentiment`), `topic`, `title`, `description` and `request`
        (`title`, `description`); at least one of structure, articles, topic or title. Params:
        `format` (`"markdown"`), `include_outline` (bool), `max_summary_sentences` (1-50).
        Raises `BadInputError` naming the offending field.
        """
        fmt = params.get("format")
        if fmt not in FORMATS:
            raise BadInputError(
                f"report format {fmt!r} is not available; supported: {', '.join(FORMATS)} "
                "(html and json come with the AI workers)",
                details={"format": repr(fmt)[:80], "supported": list(FORMATS)},
            )
        include_outline = params.get("include_outline")
        if not isinstance(include_outline, bool):
            raise BadInputError("include_outline must be true or false")
        sentences = params.get("max_summary_sentences")
        if isinstance(sentences, bool) or not isinstance(sentences, int):
            sentences = -1
        if not 1 <= sentences <= _MAX_SENTENCES:
            raise BadInputError(
                f"max_summary_sentences must be an integer from 1 to {_MAX_SENTENCES}"
            )
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
        return cls(
            title=title or request_title or structure_title or topic or "Report",
            topic=topic or structure_topic or request_title,
            description=_text(inputs.get("description"), "description")
            or _text(request.get("description"), "request.description"),
            structure_type=_text(structure.get("structure_type"), "structure.structure_type"),
            granularity=granularity,
            audience=_text(structure.get("target_audience"), "structure.target_audience"),
            outline=_OutlineReader().elements(structure.get("elements"), "structure.elements", 1),
            articles=tuple(_article(a, f"articles[{i}]") for i, a in enumerate(articles)),
            include_outline=include_outline,
            max_summary_sentences=sentences,
        )

    def summary_texts(self) -> tuple[list[str], list[str]]:
        """What the summary draws on: first the request description and the article
        summaries; then, only if those have no usable sentence, the structure's descriptions
        (in tree order).

        Structure descriptions come second because without an LLM they are template phrases:
        their repeated words would outscore any real content in a word-frequency ranking,
        and the outline sections show them anyway.
        """
        primary = [self.description, *(article.summary for article in self.articles)]
        return primary, _walk(self.outline)


def build_report(job: ReportJob) -> tuple[ReportContent, RenderedReport]:
    """Summarise and render `job` (pure and deterministic)."""
    primary, fallback = job.summary_texts()
    summary = extractive_summary(primary, job.max_summary_sentences) or extractive_summary(
        fallback, job.max_summary_sentences
    )
    content = ReportContent(
        title=job.title,
        method=METHOD,
        topic=job.topic,
        structure_type=job.structure_type,
        granularity=job.granularity,
        audience=job.audience,
        summary=tuple(summary),
        outline=job.outline,
        articles=job.articles,
        include_outline=job.include_outline,
    )
    return content, render_report(content)


class ReportBuilder(Worker):
    """Builds a Markdown report (action `build_report`) and stores it as `report.md`.

    Deterministic: the same inputs give a byte-identical report (no timestamps in it).
    Reports progress at 10, 30, 80 and 100 %.
    """

    info: ClassVar[WorkerInfo] = WorkerInfo(
        name="report_builder",
        description="Markdown reports from a structure and classified articles, with an "
        "extractive executive summary.",
        actions=("build_report",),
        slots=8,
        memory_mb=64,
    )
    defaults: ClassVar[Mapping[str, Any]] = {
        "format": "markdown",
        "include_outline": True,
        "max_summary_sentences": 5,
    }

    def job(self, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> ReportJob:
        """The checked job for `inputs` and `params` merged over `defaults`.

        Raises `BadInputError`.
        """
        return ReportJob.from_stage(inputs, {**self.defaults, **params})

    def check_input(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> None:
        """Refuse an unknown action or unusable inputs/params. Raises `BadInputError`."""
        super().check_input(action, inputs, params)
        self.job(inputs, params)

    def estimate(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> ResourceEstimate:
        """No tokens (no LLM); time grows with the text to summarise.

        Raises `BadInputError` for unusable inputs or params.
        """
        primary, fallback = self.job(inputs, params).summary_texts()
        text = sum(len(t) for t in [*primary, *fallback])
        return ResourceEstimate(duration_ms=10 + text // 20_000, memory_mb=self.info.memory_mb)

    async def process(
        self,
        action: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        ctx: WorkerContext,
    ) -> WorkerResult:
        """Build and store the report. Raises `BadInputError` for unusable input."""
        await ctx.progress(10, "checking input")
        # Checked again here: a caller may process without a handshake (embedded use).
        super().check_input(action, inputs, params)
        job = self.job(inputs, params)
        await ctx.progress(30, "summarising and rendering")
        content, rendered = build_report(job)
        data = rendered.markdown.encode("utf-8")
        ref = ctx.store_artifact(data, name="report.md", media_type=MEDIA_TYPE)
        await ctx.progress(80, "report stored")
        notes = ["no LLM configured: executive summary extracted by word-frequency ranking"]
        if rendered.omitted_links:
            notes.append(f"{rendered.omitted_links} source address(es) not linked: not http(s)")
        output = {
            "title": job.title,
            "format": "markdown",
            "artifacts": [
                {
                    "type": "report",
                    "name": "report.md",
                    "media_type": MEDIA_TYPE,
                    "ref": unstructure(ref),
                },
            ],
            "word_count": rendered.word_count,
            "section_count": rendered.section_count,
            "summary": " ".join(content.summary),
            "method": METHOD,
        }
        # Usage stays empty: the host measures the artifact's bytes and the compute time.
        summary = StageSummary(method=METHOD, usage=Usage(), notes=tuple(notes))
        await ctx.progress(100, "done")
        return WorkerResult(output=output, summary=summary)
