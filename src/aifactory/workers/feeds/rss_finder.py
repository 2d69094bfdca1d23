"""`RssSourceFinder`: feeds for a topic, from a curated catalogue and from pages named to it.

The documented non-LLM method `non-llm:catalogue-search`:

1. The query is the topic and keywords, cut into content words (`aifactory.workers.text.keywords`)
   and folded to a crude singular (`markets` → `market`, `studies` → `study`).
2. Each catalogue entry scores 2 for every query word among its topics or category, and 1 for
   one found only in its title or site; the score is that sum over twice the number of query
   words (0-1). Entries scoring 0 are left out; ties go alphabetically by title.
3. Pages listed in `discover_from` are fetched through a `SafeFetcher`: a page that is itself a
   feed is taken as it is, otherwise its `<link rel="alternate">` feeds are taken, and when it
   advertises none, the common feed paths at its site's root are probed (each through the
   same `SafeFetcher`) until one answers with a feed. Discovered feeds come first.

Output: `{"sources": [{"url", "title", "site", "score", "matched", "origin"}], "query",
"discovered", "errors": [{"url", "code", "error"}], "method": "non-llm:catalogue-search"}`.
"""

from __future__ import annotations

import codecs
import importlib.resources
import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from typing import Any, ClassVar

import attrs

from ..._exceptions import AIFactoryError, BadInputError
from ...models.execution import Usage
from ...protocol.messages import ResourceEstimate, StageSummary
from ..base import JobWorker, WorkerContext, WorkerInfo, WorkerResult
from ..text.keywords import content_words
from .netguard import SafeFetcher
from .parse import looks_like_feed

__all__ = [
    "COMMON_FEED_PATHS",
    "FEED_MEDIA_TYPES",
    "METHOD",
    "CatalogueEntry",
    "RssSourceFinder",
    "SourceMatch",
    "SourceQuery",
    "discover_feeds",
    "load_catalogue",
    "search_catalogue",
    "search_terms",
]

METHOD = "non-llm:catalogue-search"
COMMON_FEED_PATHS = ("/feed", "/rss", "/feed.xml", "/atom.xml", "/index.xml", "/rss.xml")
FEED_MEDIA_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/feed+json"}
)
MAX_PAGES = 20
MAX_KEYWORDS = 100
_PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.IGNORECASE)


@attrs.frozen
class CatalogueEntry:
    """A curated feed: where it is, whose it is, and what it is about."""

    title: str
    url: str
    site: str
    category: str
    topics: tuple[str, ...]
    language: str = "en"


def load_catalogue(data: bytes | None = None) -> tuple[CatalogueEntry, ...]:
    """The catalogue in `data` (JSON: `{"sources": [{title, url, site, category, topics,
    language}]}`), or the one shipped in the package (`sources.json`).

    Raises `BadInputError` for a catalogue that is not of that shape.
    """
    if data is None:
        data = importlib.resources.files(__package__).joinpath("sources.json").read_bytes()
    try:
        items = json.loads(data)["sources"]
        return tuple(
            CatalogueEntry(
                title=str(item["title"]),
                url=str(item["url"]),
                site=str(item["site"]),
                category=str(item["category"]),
                topics=tuple(str(topic) for topic in item["topics"]),
                language=str(item.get("language", "en")),
            )
            for item in items
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInputError(f"malformed source catalogue: {exc!r}") from exc


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def search_terms(*texts: str) -> list[str]:
    """The distinct content words of `texts`, case-folded and singular, in first-seen order."""
    return list(dict.fromkeys(_singular(w) for text in texts for w in content_words(text)))


@attrs.frozen
class SourceMatch:
    """A catalogue entry found for a query, with its score (0-1) and the query words it
    matched."""

    entry: CatalogueEntry
    score: float
    matched: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The match as it appears in the worker output."""
        return {
            "url": self.entry.url,
            "title": self.entry.title,
            "site": self.entry.site,
            "score": self.score,
            "matched": list(self.matched),
            "origin": "catalogue",
        }


def search_catalogue(
    catalogue: Sequence[CatalogueEntry],
    terms: Sequence[str],
    limit: int,
    *,
    language: str | None = None,
) -> list[SourceMatch]:
    """The `limit` best entries of `catalogue` for the query `terms` (see the module
    docstring for the scoring), optionally only those in `language`."""
    matches = []
    for entry in catalogue:
        if language and entry.language.casefold() != language.casefold():
            continue
        strong = set(search_terms(entry.category, *entry.topics))
        weak = set(search_terms(entry.title, entry.site))
        points = sum(2 if term in strong else 1 for term in terms if term in strong | weak)
        if points:
            matched = tuple(term for term in terms if term in strong | weak)
            matches.append(SourceMatch(entry, round(points / (2 * len(terms)), 3), matched))
    matches.sort(key=lambda match: (-match.score, match.entry.title.casefold()))
    return matches[:limit]


class _FeedLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: (value or "").strip() for name, value in attrs}
        if tag == "base" and self.base is None and values.get("href"):
            self.base = values["href"]
        elif tag == "link" and values.get("href"):
            rels = values.get("rel", "").casefold().split()
            media_type = values.get("type", "").split(";")[0].strip().casefold()
            if "alternate" in rels and media_type in FEED_MEDIA_TYPES:
                self.hrefs.append(values["href"])


def discover_feeds(html: str, base_url: str) -> list[str]:
    """The feed URLs a page advertises with `<link rel="alternate" type="application/rss+xml"
    | "application/atom+xml" | "application/feed+json" href>`, in page order, without repeats.

    Relative `href`s resolve against the page's `<base href>` if any, else `base_url`; only
    http(s) results are kept.
    """
    parser = _FeedLinks()
    parser.feed(html)
    parser.close()
    base = urllib.parse.urljoin(base_url, parser.base) if parser.base else base_url
    found = []
    for href in parser.hrefs:
        url = urllib.parse.urldefrag(urllib.parse.urljoin(base, href)).url
        if urllib.parse.urlsplit(url).scheme in ("http", "https"):
            found.append(url)
    return list(dict.fromkeys(found))


def _decode(body: bytes, content_type: str) -> str:
    match = _CHARSET.search(content_type)
    encoding = match.group(1) if match else "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"
    return body.decode(encoding, errors="replace")


def _text(value: object, field: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise BadInputError(
            f"{field} must be text of at most {limit} characters", details={"field": field}
        )
    return value


def _texts(value: object, field: str, most: int) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) > most:
        raise BadInputError(
            f"{field} must be a list of at most {most} texts", details={"field": field}
        )
    return tuple(_text(item, f"{field}[{i}]", 2048) for i, item in enumerate(items))


@attrs.frozen
class SourceQuery:
    """A checked search: query words, how many sources, which language, pages to search."""

    terms: tuple[str, ...]
    max_sources: int = 10
    language: str | None = None
    discover_from: tuple[str, ...] = ()
    probe_common_paths: bool = True

    @classmethod
    def from_stage(cls, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> SourceQuery:
        """Check inputs `topic` (text) and `keywords` (a list of texts) and params
        `max_sources` (or `sources`; 1-100, default 10), `language`, `discover_from` (up to
        20 page URLs) and `probe_common_paths`. A query needs topic, keywords or pages.

        Raises `BadInputError`.
        """
        topic = "" if inputs.get("topic") is None else _text(inputs["topic"], "topic", 500)
        keywords = _texts(inputs.get("keywords"), "keywords", MAX_KEYWORDS)
        pages = _texts(params.get("discover_from"), "discover_from", MAX_PAGES)
        count = params.get("max_sources", params.get("sources", 10))
        if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= 100:
            raise BadInputError(
                "max_sources must be an integer from 1 to 100", details={"field": "max_sources"}
            )
        language = params.get("language")
        if language is not None:
            language = _text(language, "language", 35)
        terms = tuple(search_terms(topic, *keywords))
        if not terms and not pages:
            raise BadInputError(
                "finding sources needs a topic, keywords or discover_from pages",
                details={"fields": ["topic", "keywords", "discover_from"]},
            )
        return cls(terms, count, language, pages, bool(params.get("probe_common_paths", True)))


class RssSourceFinder(JobWorker[SourceQuery]):
    """Finds feeds for a topic (action `find_sources`) without an LLM.

    `catalogue` defaults to the curated one in the package; `fetcher` (used only for
    `discover_from` pages) defaults to a `SafeFetcher` with the safe default policy.
    """

    job_type = SourceQuery
    info: ClassVar[WorkerInfo] = WorkerInfo(
        name="rss_source_finder",
        description="Feeds for a topic from a curated catalogue (keyword ranking), plus feed "
        "discovery on given pages (<link rel=alternate>, common feed paths).",
        actions=("find_sources",),
        slots=8,
        memory_mb=64,
    )
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self,
        catalogue: Sequence[CatalogueEntry] | None = None,
        *,
        fetcher: SafeFetcher | None = None,
    ) -> None:
        self.catalogue = tuple(load_catalogue() if catalogue is None else catalogue)
        self.fetcher = fetcher or SafeFetcher()

    def estimate(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> ResourceEstimate:
        """No tokens; a catalogue search is instant, each page to discover on up to ~2 s.

        Raises `BadInputError` for an unusable query.
        """
        query = self.job(inputs, params)
        return ResourceEstimate(
            duration_ms=10 + 2000 * len(query.discover_from), memory_mb=self.info.memory_mb
        )

    async def _probe(self, page_url: str) -> list[str]:
        parts = urllib.parse.urlsplit(page_url)
        for path in COMMON_FEED_PATHS:
            url = f"{parts.scheme}://{parts.netloc}{path}"
            try:
                result = await self.fetcher.fetch(url)
            except AIFactoryError:
                continue
            if result.ok and looks_like_feed(result.body):
                return [url]
        return []

    async def discover(
        self, pages: Sequence[str], *, probe: bool = True
    ) -> tuple[list[str], list[dict[str, str]]]:
        """The feeds found on `pages` (see the module docstring) and the pages that failed,
        as `{url, code, error}`. Never raises for a page: its failure is reported."""
        feeds: list[str] = []
        errors: list[dict[str, str]] = []
        for page in pages:
            try:
                result = await self.fetcher.fetch(page, accept=_PAGE_ACCEPT)
            except AIFactoryError as exc:
                errors.append({"url": page, "code": exc.code, "error": str(exc)})
                continue
            if not result.ok:
                errors.append(
                    {"url": page, "code": "http_status", "error": f"HTTP {result.status}"}
                )
            elif looks_like_feed(result.body):
                feeds.append(page)
            else:
                html = _decode(result.body, result.headers.get("content-type", ""))
                found = discover_feeds(html, result.final_url)
                feeds.extend(found or (await self._probe(result.final_url) if probe else []))
        return list(dict.fromkeys(feeds)), errors

    async def process(
        self,
        action: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        ctx: WorkerContext,
    ) -> WorkerResult:
        """Search the catalogue and discover feeds on the given pages. When nothing is found
        the summary says `continue_pipeline=False`. Raises `BadInputError` for an unusable
        query."""
        await ctx.progress(10, "checking input")
        query = self.checked_job(action, inputs, params)
        await ctx.progress(30, f"discovering feeds on {len(query.discover_from)} page(s)")
        feeds, errors = await self.discover(query.discover_from, probe=query.probe_common_paths)
        await ctx.progress(80, "searching the catalogue")
        sources = [
            {
                "url": url,
                "title": urllib.parse.urlsplit(url).hostname or url,
                "site": urllib.parse.urlsplit(url).hostname or "",
                "score": 1.0,
                "matched": [],
                "origin": "discovered",
            }
            for url in feeds
        ]
        if query.terms:
            known = {source["url"] for source in sources}
            matches = search_catalogue(
                self.catalogue, query.terms, query.max_sources, language=query.language
            )
            sources += [m.to_json() for m in matches if m.entry.url not in known]
        sources = sources[: query.max_sources]
        output = {
            "sources": sources,
            "query": list(query.terms),
            "discovered": len(feeds),
            "errors": errors,
            "method": METHOD,
        }
        notes = ["no LLM: sources ranked by keyword overlap with a curated catalogue"]
        if not sources:
            notes.append("no source found for the query; the pipeline stops here")
        summary = StageSummary(
            method=METHOD, usage=Usage(), continue_pipeline=bool(sources), notes=tuple(notes)
        )
        await ctx.progress(100, "done")
        return WorkerResult(output=output, summary=summary)
