"""Feed parsing: RSS 2.0, RDF, Atom and JSON Feed documents into plain-text `Article`s.

RSS, RDF and Atom are parsed by `feedparser` (fed the bytes we fetched, never a URL or a file
name); JSON Feed 1.x is parsed here. Titles and summaries become plain text (`html_to_text`),
links become canonical absolute http(s) URLs without tracking parameters (`canonical_url`).

Nothing here touches the network: this is the part of `aifactory.workers.feeds.feed_fetcher` that
reads bytes, kept apart so that the feed worker and feed discovery (`looks_like_feed`, used by
`aifactory.workers.feeds.rss_finder`) share it, and so that hostile documents can be tested without
a server.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import re
import urllib.parse
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import attrs
import feedparser  # type: ignore[import-untyped]

from ..._exceptions import BadInputError

__all__ = [
    "Article",
    "MalformedFeedError",
    "canonical_url",
    "html_to_text",
    "looks_like_feed",
    "parse_feed",
]

MAX_SUMMARY_CHARS = 2_000
_TRACKING = re.compile(r"^(utm_[a-z]+|fbclid|gclid|mc_cid|mc_eid)$", re.IGNORECASE)
_BOM = b"\xef\xbb\xbf"


class MalformedFeedError(BadInputError):
    """A fetched document is not a feed we can read (broken XML, not RSS/Atom/JSON Feed)."""

    code = "malformed_feed"


@attrs.frozen
class Article:
    """One article of a feed, with plain-text title and summary."""

    title: str
    url: str | None
    summary: str
    published: datetime | None
    source: str
    source_url: str
    guid: str | None = None

    @property
    def id(self) -> str:
        """A stable id: derived from the canonical URL, else the guid, else source and title."""
        basis = self.url or self.guid or f"{self.source_url}\n{self.title}"
        return "art_" + hashlib.sha256(basis.encode()).hexdigest()[:16]

    def keys(self) -> list[str]:
        """What makes two articles the same: canonical URL, guid, normalised title."""
        found = [f"url:{self.url}"] if self.url else []
        if self.guid:
            found.append(f"guid:{self.guid}")
        title = " ".join(re.sub(r"[^\w\s]", " ", self.title.casefold()).split())
        if title:
            found.append(f"title:{title}")
        return found

    def to_json(self) -> dict[str, Any]:
        """The article as it appears in the worker output."""
        return {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "summary": self.summary,
            "published": self.published.isoformat() if self.published else None,
            "source": self.source,
            "source_url": self.source_url,
        }


class _TextExtractor(HTMLParser):
    _SKIPPED = frozenset({"script", "style", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self._skipping += 1
        self.parts.append(" ")  # tags separate words (`<p>a</p><p>b</p>` is "a b")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED and self._skipping:
            self._skipping -= 1
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    """The visible text of an HTML fragment, whitespace collapsed, cut at a word near `limit`."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    text = " ".join("".join(extractor.parts).split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + "…"


def canonical_url(url: str | None, base: str) -> str | None:
    """`url` made absolute against `base`, without fragment and tracking parameters; `None`
    for anything but http(s)."""
    if not url or not isinstance(url, str):
        return None
    parts = urllib.parse.urlsplit(urllib.parse.urljoin(base, url.strip()))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    query = urllib.parse.urlencode(
        [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, True) if not _TRACKING.match(k)]
    )
    netloc = parts.netloc.lower()
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", query, ""))


def looks_like_feed(body: bytes) -> bool:
    """True if `body` starts like an RSS, RDF, Atom or JSON Feed document."""
    head = body[:2048].removeprefix(_BOM).lstrip().lower()
    if head.startswith(b"{"):
        return b"jsonfeed.org/version" in body[:65536]
    return any(tag in head for tag in (b"<rss", b"<feed", b"<rdf:rdf"))


def _date(value: object) -> datetime | None:
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if value is not None and hasattr(value, "tm_year"):  # feedparser's UTC struct_time
        return datetime.fromtimestamp(calendar.timegm(value), UTC)  # type: ignore[arg-type]
    return None


def _json_feed(body: bytes, url: str, name: str | None) -> tuple[str, list[Article]]:
    try:
        data = json.loads(body.removeprefix(_BOM))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedFeedError(f"not valid JSON: {exc}") from exc
    version = data.get("version") if isinstance(data, dict) else None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(version, str) or not version.startswith("https://jsonfeed.org/version/"):
        raise MalformedFeedError("JSON document is not a JSON Feed (no jsonfeed.org version)")
    if not isinstance(items, list):
        raise MalformedFeedError("JSON Feed has no items list")
    title = data.get("title") if isinstance(data.get("title"), str) else None
    source = name or html_to_text(title or "", 200) or url
    articles = []
    for item in items:
        if not isinstance(item, dict):
            continue
        html = item.get("summary") or item.get("content_html") or item.get("content_text") or ""
        guid = item.get("id")
        articles.append(
            Article(
                title=html_to_text(str(item.get("title") or ""), 500),
                url=canonical_url(item.get("url") or item.get("external_url"), url),
                summary=html_to_text(html) if isinstance(html, str) else "",
                published=_date(item.get("date_published") or item.get("date_modified")),
                source=source,
                source_url=url,
                guid=str(guid) if isinstance(guid, str | int) else None,
            )
        )
    return source, articles


def _xml_feed(body: bytes, url: str, name: str | None) -> tuple[str, list[Article]]:
    # A stream, never bytes or str: feedparser treats those as URLs or file names to open.
    parsed = feedparser.parse(io.BytesIO(body), response_headers={"content-location": url})
    if not parsed.get("version") or (parsed.get("bozo") and not parsed.entries):
        problem = parsed.get("bozo_exception") or "no RSS, RDF or Atom document found"
        raise MalformedFeedError(f"not a readable feed: {problem}")
    source = name or html_to_text(parsed.feed.get("title", ""), 200) or url
    articles = []
    for entry in parsed.entries:
        content = entry.get("content") or [{}]
        html = entry.get("summary") or content[0].get("value") or ""
        articles.append(
            Article(
                title=html_to_text(entry.get("title", ""), 500),
                url=canonical_url(entry.get("link"), url),
                summary=html_to_text(html),
                published=_date(entry.get("published_parsed") or entry.get("updated_parsed")),
                source=source,
                source_url=url,
                guid=entry.get("id") or None,
            )
        )
    return source, articles


def parse_feed(
    body: bytes, *, url: str, media_type: str = "", name: str | None = None
) -> tuple[str, list[Article]]:
    """The source title and articles (in feed order) of an RSS, Atom or JSON Feed document.

    `url` is the feed's address (relative links resolve against it); `name` overrides the
    feed's own title as the articles' `source`. Raises `MalformedFeedError`.
    """
    stripped = body.removeprefix(_BOM).lstrip()
    try:
        if "json" in media_type or stripped.startswith(b"{"):
            return _json_feed(stripped, url, name)
        return _xml_feed(body, url, name)
    except MalformedFeedError:
        raise
    except Exception as exc:  # a parser crash on hostile input is a bad feed, not a bug of ours
        raise MalformedFeedError(f"not a readable feed: {exc}") from exc
