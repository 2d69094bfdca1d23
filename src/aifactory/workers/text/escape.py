"""Untrusted text made safe to show: one plain line, inline Markdown, link addresses (pure).

Text that came from input or from a model may hold anything. `plain_text` puts it on one
line without control characters or bidirectional overrides; `escape_markdown` makes it inline
Markdown that renders as exactly that text, never as structure (no heading, list, quote or
code block, link, image, emphasis, code span or raw HTML); `safe_link_url` says whether an
address may become a link (only absolute `http`/`https`). The report renderers and the
content generator's document use them.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

__all__ = ["escape_markdown", "plain_text", "safe_link_url"]

# Characters that start inline structure anywhere in a line: escapes, code spans, emphasis,
# links and images, autolinks and HTML, entities, strikethrough, table cells, headings.
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>&~|#])")
# At the start of a line these begin a list, a setext underline or a thematic break.
_LEADING_MARKER = re.compile(r"^(?:([-+=])|(\d{1,9})([.)]))")
# Unicode bidirectional overrides can make displayed text differ from what it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_MAX_URL_LENGTH = 2048


def plain_text(text: str) -> str:
    """`text` on one line: control characters become spaces, bidirectional overrides are
    dropped, lone surrogates become U+FFFD, and whitespace is collapsed.
    """
    visible = "".join(
        " "
        if unicodedata.category(c) == "Cc"
        else "\ufffd"
        if unicodedata.category(c) == "Cs"
        else c
        for c in text
        if c not in _BIDI_CONTROLS
    )
    return " ".join(visible.split())


def escape_markdown(text: str) -> str:
    """`text` as inline Markdown that renders as exactly that text (whitespace collapsed).

    Line breaks and control characters become spaces, Markdown punctuation is
    backslash-escaped, and a leading list marker, `=` or `+` is escaped too.
    """
    escaped = _INLINE_SPECIAL.sub(r"\\\1", plain_text(text))
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
    if any(c in "<>\\" or c.isspace() or unicodedata.category(c) in ("Cc", "Cs") for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url
