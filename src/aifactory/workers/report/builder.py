"""`ReportBuilder`: a report in Markdown, HTML, JSON and/or PDF from articles, a structure and
a request.

Action `build_report`. Inputs: `structure` (a content granulator output), `articles` (the
content classifier's: `id`, `title`, `url`, `summary`, `published`, `source`, `source_url`,
`relevance` 0-1, `sentiment` -1..1, `sentiment_label`; all optional), `topic`, `title`,
`description` and `request` (`title`, `description`); at least one of structure, articles,
topic or title. Params (see `ReportBuilder.defaults`):

- `format`: `"markdown"`, `"html"`, `"json"`, `"pdf"`, a list of them, or `"all"`; one
  artifact each, in the order given (`"all"`: that order): `report.md`, `report.html`,
  `report.json`, `report.pdf`;
- `include_outline` (bool), `max_summary_sentences` (1-50);
- `min_relevance` (0-1) and `max_sources` (0-1000): the shown articles are those with at
  least `min_relevance` (an article without a relevance is shown only when it is 0), most
  relevant first (ties and unscored articles keep their input order, unscored last), at most
  `max_sources` of them. The summary and the overview draw on the shown articles only.

The executive summary: without a language model, the documented non-LLM method
`non-llm:extractive-summary` (`aifactory.workers.text.summarize`) over the request description
and the shown articles' summaries (the structure's descriptions only when those have none;
see `ReportJob.summary_texts`, `aifactory.workers.report.job`); with one, `llm:<model>`
writes the summary and key points (`aifactory.workers.report.llm_summary`), and a reply that fails
its checks fails the stage.

Output (`ref` is the stored `StorageRef` in its JSON form, `summary` plain unescaped text;
`word_count` and `section_count` are counted on the Markdown rendering, `overview` is `null`
when no articles were given):

```
{"title", "format": <the first format>, "formats": [...],
 "artifacts": [{"type": "report", "name": "report.md", "media_type", "format", "ref"}, ...],
 "word_count", "section_count", "summary", "key_points": [...],
 "overview": {"received", "shown", "sources", "average_sentiment", "positive", "neutral",
              "negative", "top_keywords"},
 "method"}
```

`report.json` is `ReportContent.document()` (`aifactory.workers.report.content`);
`report.pdf` is written by `aifactory.workers.report.pdf_render`. Every
format is deterministic: the same inputs (and model reply) give byte-identical artifacts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from ...protocol.codec import unstructure
from ...protocol.messages import ResourceEstimate, StageSummary
from ..base import ModelWorker, WorkerContext, WorkerInfo, WorkerResult
from ..model_calls import LLMTally, llm_method
from ..text.summarize import METHOD, extractive_summary
from .content import ReportContent
from .html_render import render_html
from .job import ReportJob
from .llm_summary import MAX_KEY_POINTS, model_summary
from .markdown_render import RenderedReport, render_report
from .pdf_render import render_pdf

__all__ = [
    "ARTIFACTS",
    "MEDIA_TYPE",
    "ReportBuilder",
    "ReportFile",
    "extractive_content",
    "render_files",
]

ARTIFACTS: Mapping[str, tuple[str, str]] = {
    "markdown": ("report.md", "text/markdown; charset=utf-8"),
    "html": ("report.html", "text/html; charset=utf-8"),
    "json": ("report.json", "application/json"),
    "pdf": ("report.pdf", "application/pdf"),
}
MEDIA_TYPE = ARTIFACTS["markdown"][1]


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
            data = rendered.markdown.encode("utf-8")
        elif fmt == "html":
            data = render_html(content).encode("utf-8")
        elif fmt == "pdf":
            data = render_pdf(content)
        else:
            text = json.dumps(content.document(), ensure_ascii=False, indent=2) + "\n"
            data = text.encode("utf-8")
        name, media_type = ARTIFACTS[fmt]
        files.append(ReportFile(fmt, name, media_type, data))
    return rendered, files


class ReportBuilder(ModelWorker[ReportJob]):
    """Builds a report (action `build_report`) in Markdown, HTML, JSON and/or PDF; see the module
    docstring. With `llm`, the model writes the executive summary and key points.

    Deterministic: the same inputs (and model replies) give byte-identical artifacts.
    Reports progress at 10, 30, (60 with a model,) 80 and 100 %.
    """

    info: ClassVar[WorkerInfo] = WorkerInfo(
        name="report_builder",
        description="Markdown, HTML, JSON and PDF reports from a structure and classified "
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
            entry = {
                "type": "report",
                "name": file.name,
                "media_type": file.media_type,
                "format": file.format,
            }
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
