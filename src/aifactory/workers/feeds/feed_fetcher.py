"""`FeedFetcher`: articles from RSS 2.0, Atom and JSON Feed sources, fetched SSRF-safely.

Every source goes through a `SafeFetcher` (see `aifactory.workers.feeds.netguard`) and is parsed by
`aifactory.workers.feeds.parse` (RSS and Atom through `feedparser`, JSON Feed 1.x there). A
per-worker cache keeps each feed's validators and articles, so a repeated fetch is a
conditional GET and a `304 Not Modified` reuses the cached articles.

Articles are deduplicated across sources (a repeat of an earlier article's canonical URL, id
or normalised title is dropped), the newest come first (undated ones last), and the output is

```
{"articles": [{"id", "title", "url", "summary", "published", "source", "source_url"}],
 "sources": [{"url", "title", "status", "articles"}],
 "sources_fetched", "sources_failed", "errors": [{"source", "url", "code", "error"}],
 "method": "feed-fetch"}
```

A source that fails (unsafe URL, network, HTTP status, malformed feed) is reported in
`errors`; the stage fails only when every source failed.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import anyio
import attrs

from ..._exceptions import AIFactoryError, BadInputError, StageFailedError
from ...models.execution import Usage
from ...protocol.messages import ResourceEstimate, StageSummary
from ..base import JobWorker, WorkerContext, WorkerInfo, WorkerResult
from .fetch_policy import FetchError, FetchPolicy, UnsafeURLError, Validators
from .netguard import SafeFetcher
from .parse import Article, parse_feed

__all__ = [
    "METHOD",
    "FeedFetcher",
    "FeedJob",
    "FeedSource",
]

METHOD = "non-llm:feed-fetch"
MAX_SOURCES = 100
FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.1"
)


@attrs.frozen
class FeedSource:
    """A feed to fetch: its URL and, optionally, the name to show for it."""

    url: str
    title: str | None = None

    @property
    def name(self) -> str:
        """The title if given, else the URL."""
        return self.title or self.url


def _sources(value: object) -> tuple[FeedSource, ...]:
    if not isinstance(value, list) or not value:
        raise BadInputError("sources must be a non-empty list", details={"field": "sources"})
    if len(value) > MAX_SOURCES:
        raise BadInputError(f"at most {MAX_SOURCES} sources", details={"field": "sources"})
    found: dict[str, FeedSource] = {}
    for i, item in enumerate(value):
        url, title = (item, None) if isinstance(item, str) else (None, None)
        if isinstance(item, Mapping):
            url, title = item.get("url"), item.get("title")
        if not isinstance(url, str) or not 0 < len(url.strip()) <= 2048:
            raise BadInputError(
                f"sources[{i}] needs a url of 1-2048 characters", details={"field": "sources"}
            )
        if title is not None and not isinstance(title, str):
            raise BadInputError(f"sources[{i}].title must be text", details={"field": "sources"})
        found.setdefault(url.strip(), FeedSource(url.strip(), " ".join((title or "").split())))
    return tuple(found.values())


def _number(params: Mapping[str, Any], name: str, *, whole: bool) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    kind = int if whole else int | float
    if isinstance(value, bool) or not isinstance(value, kind) or not 0 < value <= 100_000:
        raise BadInputError(
            f"{name} must be a positive {'integer' if whole else 'number'} up to 100000",
            details={"field": name},
        )
    return float(value)


@attrs.frozen
class FeedJob:
    """A checked fetch job: which feeds, and how many articles of what age to keep."""

    sources: tuple[FeedSource, ...]
    max_articles: int = 50
    max_age_days: float | None = None
    per_feed_limit: int | None = None

    @classmethod
    def from_stage(cls, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> FeedJob:
        """Check stage inputs and params (merged over the worker defaults).

        Inputs: `sources`, a list of URLs or `{url, title?}` objects (1-100). Params:
        `max_articles` (positive integer), `max_age_days` (positive number, optional),
        `per_feed_limit` (positive integer, optional). Raises `BadInputError`.
        """
        max_articles = _number(params, "max_articles", whole=True)
        per_feed = _number(params, "per_feed_limit", whole=True)
        return cls(
            sources=_sources(inputs.get("sources")),
            max_articles=50 if max_articles is None else int(max_articles),
            max_age_days=_number(params, "max_age_days", whole=False),
            per_feed_limit=None if per_feed is None else int(per_feed),
        )

    def select(self, articles: Iterable[Article], now: datetime) -> list[Article]:
        """One feed's articles within `max_age_days` (undated ones are kept) and the
        `per_feed_limit`, in feed order."""
        kept = list(articles)
        if self.max_age_days is not None:
            cutoff = now - timedelta(days=self.max_age_days)
            kept = [a for a in kept if a.published is None or a.published >= cutoff]
        return kept[: self.per_feed_limit]


@attrs.frozen
class _CachedFeed:
    validators: Validators
    title: str
    articles: tuple[Article, ...]


@attrs.frozen
class _Outcome:
    source: FeedSource
    status: str
    title: str = ""
    articles: tuple[Article, ...] = ()
    error: AIFactoryError | None = None


def _newest_first(article: Article) -> tuple[bool, float]:
    return article.published is None, -(article.published.timestamp() if article.published else 0)


class FeedFetcher(JobWorker[FeedJob]):
    """Fetches feeds into deduplicated articles (action `fetch`), SSRF-safely.

    `fetcher` is a configured `SafeFetcher`, or a `FetchPolicy` to build one from; the default
    refuses every address that is not globally routable. Sources are fetched `concurrency` at
    a time. The conditional-GET cache holds the `cache_size` most recently fetched feeds.
    """

    job_type = FeedJob
    info: ClassVar[WorkerInfo] = WorkerInfo(
        name="feed_fetcher",
        description="Articles from RSS 2.0, Atom and JSON Feed sources: conditional GET, "
        "deduplication, size/time/redirect limits, SSRF-safe.",
        actions=("fetch",),
        slots=4,
        memory_mb=128,
    )
    defaults: ClassVar[Mapping[str, Any]] = {
        "max_articles": 50,
        "max_age_days": None,
        "per_feed_limit": None,
    }

    def __init__(
        self,
        fetcher: SafeFetcher | FetchPolicy | None = None,
        *,
        concurrency: int = 4,
        cache_size: int = 256,
    ) -> None:
        self.fetcher = fetcher if isinstance(fetcher, SafeFetcher) else SafeFetcher(fetcher)
        self._concurrency = max(1, concurrency)
        self._cache_size = max(0, cache_size)
        self._cache: OrderedDict[str, _CachedFeed] = OrderedDict()

    def estimate(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> ResourceEstimate:
        """No tokens; about half a second per wave of concurrent fetches.

        Raises `BadInputError` for unusable inputs or params.
        """
        waves = math.ceil(len(self.job(inputs, params).sources) / self._concurrency)
        return ResourceEstimate(duration_ms=500 * waves, memory_mb=self.info.memory_mb)

    async def _fetch(self, source: FeedSource) -> _Outcome:
        cached = self._cache.get(source.url)
        result = await self.fetcher.fetch(
            source.url, validators=cached.validators if cached else None, accept=FEED_ACCEPT
        )
        if result.not_modified and cached is not None:
            self._cache.move_to_end(source.url)
            return _Outcome(source, "not_modified", cached.title, cached.articles)
        if not result.ok:
            raise FetchError(
                f"{source.url} answered HTTP {result.status}",
                details={"url": source.url, "status": result.status},
            )
        title, articles = parse_feed(
            result.body, url=result.final_url, media_type=result.media_type, name=source.title
        )
        self._cache.pop(source.url, None)
        if self._cache_size and (result.etag or result.last_modified):
            self._cache[source.url] = _CachedFeed(result.validators, title, tuple(articles))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return _Outcome(source, "fetched", title, tuple(articles))

    async def _fetch_all(self, sources: tuple[FeedSource, ...]) -> list[_Outcome]:
        outcomes: list[_Outcome] = [_Outcome(source, "failed") for source in sources]
        limiter = anyio.CapacityLimiter(self._concurrency)

        async def one(index: int, source: FeedSource) -> None:
            async with limiter:
                try:
                    outcomes[index] = await self._fetch(source)
                except AIFactoryError as exc:
                    outcomes[index] = _Outcome(source, "failed", error=exc)

        async with anyio.create_task_group() as group:
            for index, source in enumerate(sources):
                group.start_soon(one, index, source)
        return outcomes

    async def process(
        self,
        action: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        ctx: WorkerContext,
    ) -> WorkerResult:
        """Fetch, parse and deduplicate. Raises `BadInputError` for unusable inputs,
        `UnsafeURLError` (a `BadInputError`: not retried) when every source is unsafe, and
        `StageFailedError` (retryable) when every source failed otherwise."""
        await ctx.progress(10, "checking input")
        job = self.checked_job(action, inputs, params)
        await ctx.progress(30, f"fetching {len(job.sources)} feed(s)")
        outcomes = await self._fetch_all(job.sources)
        await ctx.progress(80, "deduplicating articles")
        errors = [
            {
                "source": o.source.name,
                "url": o.source.url,
                "code": o.error.code,
                "error": str(o.error),
            }
            for o in outcomes
            if o.error is not None
        ]
        if len(errors) == len(outcomes):
            if all(isinstance(o.error, UnsafeURLError) for o in outcomes):
                raise UnsafeURLError("no source is safe to fetch", details={"errors": errors})
            raise StageFailedError(
                f"all {len(errors)} source(s) failed", details={"errors": errors}
            )
        seen: set[str] = set()
        unique: list[Article] = []
        now = ctx.clock.now()
        for outcome in outcomes:
            for article in job.select(outcome.articles, now):
                keys = article.keys()
                if not seen.isdisjoint(keys):
                    continue
                seen.update(keys)
                unique.append(article)
        unique.sort(key=_newest_first)
        articles = unique[: job.max_articles]
        fetched = len(outcomes) - len(errors)
        output = {
            "articles": [article.to_json() for article in articles],
            "sources": [
                {
                    "url": o.source.url,
                    "title": o.title or o.source.name,
                    "status": o.status,
                    "articles": len(o.articles),
                }
                for o in outcomes
            ],
            "sources_fetched": fetched,
            "sources_failed": len(errors),
            "errors": errors,
            "method": "feed-fetch",
        }
        not_modified = sum(o.status == "not_modified" for o in outcomes)
        summary = StageSummary(
            method=METHOD,
            usage=Usage(),
            quality_score=round(100 * fetched / len(outcomes), 1),
            notes=(
                f"{fetched} of {len(outcomes)} source(s) read ({not_modified} not modified); "
                f"{len(articles)} article(s) kept of {len(unique)} unique",
                "no LLM: feeds fetched and parsed as published",
            ),
        )
        await ctx.progress(100, "done")
        return WorkerResult(output=output, summary=summary)
