"""The PDF rendering of a report (`report.pdf`), written with `fpdf2` (pure Python).

The same content as the Markdown and HTML renderings, in the same order: title, metadata
line, executive summary, key points, overview, outline (when included), sources (each title
a link when its address is a safe http(s) URL, `aifactory.workers.text.escape.safe_link_url`)
and the method note. PDF text is not markup, so nothing needs escaping; the built-in
Helvetica covers Latin-1 only, so other characters are folded to their closest Latin-1 form
(typographic quotes and dashes to plain ones, accents kept where Latin-1 has them) or to `?`.
The document is deterministic: its creation date is fixed to the epoch, so the same content
gives the same bytes.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from fpdf import FPDF

from ..text.escape import safe_link_url
from .content import OutlineElement, ReportContent, metadata_parts, method_note, source_facts

__all__ = ["MEDIA_TYPE", "render_pdf"]

MEDIA_TYPE = "application/pdf"
_PLAIN = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\u2022": "-",
        "\u2192": "->",
    }
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def latin1(text: str) -> str:
    """`text` in the characters the PDF's built-in font can show (see the module docstring)."""
    folded = []
    for char in text.translate(_PLAIN):
        if ord(char) < 256:
            folded.append(char)
            continue
        base = unicodedata.normalize("NFKD", char).encode("latin-1", "ignore").decode("latin-1")
        folded.append(base or "?")
    return "".join(folded)


class _Document(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.cell(0, 8, f"{self.page_no()}", align="C")


def _heading(pdf: FPDF, text: str, size: int) -> None:
    pdf.set_font("Helvetica", "B", size)
    pdf.multi_cell(0, size * 0.5, latin1(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1.5)


def _paragraph(pdf: FPDF, text: str, *, style: str = "", size: int = 10, indent: int = 0) -> None:
    pdf.set_font("Helvetica", style, size)
    pdf.set_x(pdf.l_margin + indent)
    pdf.multi_cell(0, size * 0.5, latin1(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)


def _outline(pdf: FPDF, elements: tuple[OutlineElement, ...], depth: int) -> None:
    for element in elements:
        label = f"{element.title} ({element.type})" if element.type else element.title
        _paragraph(pdf, label, style="B", indent=6 * depth)
        if element.description:
            _paragraph(pdf, element.description, indent=6 * depth)
        _outline(pdf, element.children, depth + 1)


def render_pdf(content: ReportContent) -> bytes:
    """The report as a PDF document (A4, deterministic bytes)."""
    pdf = _Document(format="A4")
    pdf.set_creation_date(_EPOCH)
    pdf.set_title(latin1(content.title))
    pdf.set_creator("aifactory report builder")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    _heading(pdf, content.title, 18)
    _paragraph(pdf, " - ".join(metadata_parts(content)), style="I", size=9)
    if content.summary:
        _heading(pdf, "Executive summary", 14)
        _paragraph(pdf, " ".join(content.summary))
    if content.key_points:
        _heading(pdf, "Key points", 14)
        for point in content.key_points:
            _paragraph(pdf, f"- {point}", indent=3)
    if content.overview is not None:
        _heading(pdf, "Overview", 14)
        for label, text in content.overview.items():
            _paragraph(pdf, f"{label}: {text}")
    if content.include_outline and content.outline:
        _heading(pdf, "Outline", 14)
        _outline(pdf, content.outline, 0)
    if content.articles:
        _heading(pdf, "Sources", 14)
        for number, article in enumerate(content.articles, 1):
            link = safe_link_url(article.url) or ""
            pdf.set_font("Helvetica", "BU" if link else "B", 10)
            pdf.multi_cell(
                0, 5, latin1(f"{number}. {article.title}"), link=link, new_x="LMARGIN", new_y="NEXT"
            )
            origin, facts = source_facts(article)
            details = " - ".join(part for part in (origin, facts) if part)
            if details:
                _paragraph(pdf, details, style="I", size=8, indent=4)
            if link:
                _paragraph(pdf, link, size=8, indent=4)
            if article.summary:
                _paragraph(pdf, article.summary, size=9, indent=4)
    pdf.ln(2)
    _paragraph(pdf, method_note(content.method), style="I", size=8)
    return bytes(pdf.output())
