"""Escaping untrusted text: plain lines, inline Markdown that stays text, safe link addresses.

A real CommonMark parser (markdown-it-py, which rich already depends on) checks what the
Markdown means, not just what it looks like.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from aifactory.workers.text.escape import escape_markdown, plain_text, safe_link_url

EVIL = "# Evil\n[x](javascript:alert(1))"
PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def parse(markdown: str) -> list[Token]:
    return PARSER.parse(markdown)


def inline_text(token: Token) -> str:
    return "".join(child.content for child in token.children or [])


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain words, fine.", "plain words, fine."),
        (EVIL, "\\# Evil \\[x\\](javascript:alert(1))"),
        ("- not a list", "\\- not a list"),
        ("+ nor this", "\\+ nor this"),
        ("1. nor this", "1\\. nor this"),
        ("12) nor this", "12\\) nor this"),
        ("=== no underline", "\\=== no underline"),
        ("<script>alert(1)</script>", "\\<script\\>alert(1)\\</script\\>"),
        ("`code` *em* _em_ ~~s~~ a|b", "\\`code\\` \\*em\\* \\_em\\_ \\~\\~s\\~\\~ a\\|b"),
        ("&amp; \\n", "\\&amp; \\\\n"),
        ("> quote", "\\> quote"),
        ("    indented\ttext  ", "indented text"),
        ("bidi \u202eevil\u202c ctrl\x00x", "bidi evil ctrl x"),
    ],
)
def test_escape_markdown(text: str, escaped: str) -> None:
    assert escape_markdown(text) == escaped


def shown(text: str) -> str:
    """What a reader should see: no bidi overrides, controls as spaces, whitespace collapsed."""
    kept = "".join(
        " " if unicodedata.category(c) == "Cc" else c
        for c in text
        if c not in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    )
    return " ".join(kept.split())


def assert_renders_as_text(text: str) -> None:
    tokens = parse(escape_markdown(text))
    if not shown(text):
        assert tokens == []
        return
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"]
    assert {child.type for child in tokens[1].children or []} == {"text"}
    assert inline_text(tokens[1]) == shown(text)


@given(st.text(max_size=80))
def test_escaped_text_renders_as_one_paragraph_of_exactly_that_text(text: str) -> None:
    assert_renders_as_text(text)


@given(st.text(alphabet="#-+=*_`[]()<>!&|~\\:. 0123456789ab\n\t", max_size=40))
def test_markdown_punctuation_never_becomes_structure(text: str) -> None:
    assert_renders_as_text(text)


@pytest.mark.parametrize(
    "url",
    ["https://example.com/a?b=c#d", "http://example.org", "HTTPS://EXAMPLE.COM/x_(y)"],
)
def test_http_links_are_safe(url: str) -> None:
    assert safe_link_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<b>x</b>",
        "ftp://example.com/file",
        "//example.com/path",
        "/relative/path",
        "https://",
        "https://exa mple.com",
        "https://example.com/<x>",
        "https://example.com\\@evil.com",
        "https://example.com/\nnext",
        "https://[::1",
        "",
        "https://example.com/" + "a" * 2048,
    ],
)
def test_other_links_are_refused(url: str) -> None:
    assert safe_link_url(url) is None


def test_plain_text_removes_controls_and_replaces_lone_surrogates() -> None:
    assert plain_text("a\u202eb\x00c\ud800d \n e") == "ab c\ufffdd e"
