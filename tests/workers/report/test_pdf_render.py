"""The PDF rendering: parsed back with pypdf, its pages, text, links and odd characters."""

from __future__ import annotations

import io

from pypdf import PdfReader

from aifactory.workers.report.content import Article, Overview, ReportContent
from aifactory.workers.report.pdf_render import latin1, render_pdf


def _content(count: int) -> ReportContent:
    articles = tuple(
        Article(
            title=f"Article {n} — “agents” in café",
            url=f"https://news.example/{n}",
            summary="Coding agents now write tests and review pull requests. " * 4,
            relevance=0.5,
            sentiment=0.2,
            sentiment_label="positive",
            source="News Example",
        )
        for n in range(count)
    )
    return ReportContent(
        title="AI tools 市场 report",
        method="non-llm:extractive-summary",
        topic="AI tools",
        summary=("Agents are changing how teams ship.",),
        articles=articles,
        overview=Overview.of(articles, count, "AI tools"),
    )


def _read(data: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(data))
    text = " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
    return reader, text


def test_a_pdf_opens_with_the_reports_headings_and_sources() -> None:
    reader, text = _read(render_pdf(_content(2)))
    assert len(reader.pages) == 1
    for heading in ("Executive summary", "Overview", "Sources", 'Article 1 - "agents" in café'):
        assert heading in text
    assert "Method: non-llm:extractive-summary" in text
    links = [
        annotation.get_object()["/A"]["/URI"]
        for annotation in reader.pages[0].get("/Annots", [])
        if "/A" in annotation.get_object()
    ]
    assert "https://news.example/1" in links


def test_a_long_report_runs_over_pages() -> None:
    reader, text = _read(render_pdf(_content(40)))
    assert len(reader.pages) > 3
    assert "Article 39" in text


def test_characters_outside_latin1_are_folded_not_fatal() -> None:
    assert latin1("“a” — b… ü 市") == '"a" - b... ü ?'
    assert render_pdf(_content(1)).startswith(b"%PDF-")


def test_the_same_content_gives_the_same_bytes() -> None:
    assert render_pdf(_content(3)) == render_pdf(_content(3))
