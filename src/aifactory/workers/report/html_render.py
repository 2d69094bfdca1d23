"""HTML rendering of reports: one standalone HTML5 document, safe for untrusted text (pure).

The document shows the same `ReportContent` as the Markdown report, in the same order
(title and metadata, executive summary, key points, overview, outline sections, sources,
method). What keeps it safe:

- Every piece of text from input or a model passes through `escape_html`: control
  characters and bidirectional overrides are removed (`plain_text`) and `& < > " '` are
  escaped, in text and in attribute values alike.
- Links are made only by the renderer, only to absolute `http`/`https` addresses
  (`safe_link_url`), with `rel="noopener noreferrer"`; any other address is shown as text.
- There is no script, no event handler attribute, no external resource. A
  Content-Security-Policy meta tag allows nothing but the one inline stylesheet (by its
  SHA-256 hash), so even injected markup could run no script and load nothing.
- Every element is closed explicitly and nested properly, so the document is well-formed.

Deterministic: equal content gives byte-identical HTML.
"""

from __future__ import annotations

import base64
import hashlib
import html

from ..text.escape import plain_text, safe_link_url
from .content import (
    Article,
    OutlineElement,
    ReportContent,
    metadata_parts,
    method_note,
    source_facts,
)

__all__ = ["CONTENT_SECURITY_POLICY", "STYLESHEET", "escape_html", "render_html"]

STYLESHEET = (
    "body{font-family:system-ui,sans-serif;line-height:1.5;margin:0;color:#1a1a1a;"
    "background:#fff}"
    "main{max-width:48rem;margin:0 auto;padding:1.5rem}"
    "h1{font-size:1.8rem;margin-bottom:.25rem}"
    "h2{font-size:1.3rem;margin-top:2rem;border-bottom:1px solid #ddd}"
    ".meta,.facts,footer{color:#555;font-size:.9rem}"
    "li{margin:.2rem 0}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}"
    "dt{font-weight:600}dd{margin:0}"
    "a{color:#0645ad}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLESHEET.encode("utf-8")).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'none'; "
    "script-src 'none'; base-uri 'none'; form-action 'none'"
)


def escape_html(text: str) -> str:
    """`text` as HTML text or attribute value that shows exactly that text (on one line)."""
    return html.escape(plain_text(text), quote=True)


def _outline_list(elements: tuple[OutlineElement, ...], indent: str) -> list[str]:
    if not elements:
        return []
    lines = [f"{indent}<ul>"]
    for element in elements:
        text = f"<strong>{escape_html(element.title)}</strong>"
        if element.type:
            text += f" ({escape_html(element.type)})"
        if element.description:
            text += f" — {escape_html(element.description)}"
        nested = _outline_list(element.children, indent + "    ")
        if nested:
            lines.extend([f"{indent}  <li>{text}", *nested, f"{indent}  </li>"])
        else:
            lines.append(f"{indent}  <li>{text}</li>")
    lines.append(f"{indent}</ul>")
    return lines


def _source_item(article: Article) -> str:
    title = escape_html(article.title)
    url = safe_link_url(article.url)
    if url is not None:
        text = f'<a href="{escape_html(url)}" rel="noopener noreferrer">{title}</a>'
    elif article.url:
        text = f"{title} — {escape_html(article.url)} (not linked: not http/https)"
    else:
        text = title
    origin, facts = source_facts(article)
    if origin:
        text += f" — {escape_html(origin)}"
    if facts:
        text += f' <span class="facts">— {escape_html(facts)}</span>'
    if article.summary:
        text += f"<br>{escape_html(article.summary)}"
    return f"        <li>{text}</li>"


def _section(section_id: str, heading: str, body: list[str]) -> list[str]:
    attribute = f' id="{section_id}"' if section_id else ""
    return [f"    <section{attribute}>", f"      <h2>{heading}</h2>", *body, "    </section>"]


def render_html(content: ReportContent) -> str:
    """Render `content` as a standalone HTML5 document (see the module docstring)."""
    title = escape_html(content.title) or "Report"
    metadata = " · ".join(escape_html(part) for part in metadata_parts(content))
    lines = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '  <meta charset="utf-8">',
        f'  <meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
        '  <meta name="referrer" content="no-referrer">',
        '  <meta name="viewport" content="width=device-width, initial-scale=1">',
        f"  <title>{title}</title>",
        f"  <style>{STYLESHEET}</style>",
        "</head>",
        "<body>",
        "  <main>",
        "    <header>",
        f"      <h1>{title}</h1>",
        f'      <p class="meta">{metadata}</p>',
        "    </header>",
    ]
    summary = escape_html(" ".join(content.summary))
    summary = summary or "<em>No text was available to summarise.</em>"
    lines.extend(_section("summary", "Executive summary", [f"      <p>{summary}</p>"]))
    if content.key_points:
        points = [f"        <li>{escape_html(point)}</li>" for point in content.key_points]
        lines.extend(_section("key-points", "Key points", ["      <ul>", *points, "      </ul>"]))
    if content.overview is not None:
        items = [
            f"        <dt>{escape_html(label)}</dt><dd>{escape_html(value)}</dd>"
            for label, value in content.overview.items()
        ]
        lines.extend(_section("overview", "Overview", ["      <dl>", *items, "      </dl>"]))
    if content.include_outline:
        for element in content.outline:
            heading = f"{element.order}. {escape_html(element.title)}"
            text = [f"      <p>{escape_html(element.description)}</p>"]
            children = _outline_list(element.children, "      ")
            lines.extend(_section("", heading, [*(text if element.description else []), *children]))
    if content.articles:
        items = [_source_item(article) for article in content.articles]
        lines.extend(_section("sources", "Sources", ["      <ol>", *items, "      </ol>"]))
    lines.extend(
        [
            "    <footer>",
            f"      <p>{escape_html(method_note(content.method))}</p>",
            "    </footer>",
            "  </main>",
            "</body>",
            "</html>",
        ]
    )
    return "\n".join(lines) + "\n"
