"""`FeedFetcher`: parsing real feed files, and the worker against the local feed server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from aifactory._exceptions import BadInputError, StageFailedError
from aifactory.models import Usage
from aifactory.workers.feeds.feed_fetcher import METHOD, FeedFetcher
from aifactory.workers.feeds.fetch_policy import FetchPolicy, UnsafeURLError
from aifactory.workers.feeds.netguard import SafeFetcher
from aifactory.workers.feeds.parse import (
    MalformedFeedError,
    html_to_text,
    looks_like_feed,
    parse_feed,
)

from ..conftest import ArtifactShelf
from .conftest import DATA, PUBLIC_IP, FeedServer, LoopbackConnector, MapResolver

FEED_URL = "https://feeds.example/feed"


def test_rss2_items_become_plain_text_articles() -> None:
    title, articles = parse_feed((DATA / "rss2.xml").read_bytes(), url=FEED_URL)
    assert title == "Example AI Weekly"
    first, second, third = (article.to_json() for article in articles)
    assert first["title"] == "Open models close the gap with proprietary systems"
    assert first["url"] == "https://ai-weekly.example/2026/01/open-models"  # utm_* dropped
    assert first["summary"] == (
        "Benchmarks show open-weight models within a few points of the leaders."
    )  # tags and the script are gone
    assert first["published"] == "2025-12-30T09:00:00+00:00"
    assert (first["source"], first["source_url"]) == ("Example AI Weekly", FEED_URL)
    assert first["id"].startswith("art_")
    assert second["url"] == "https://feeds.example/2025/12/market-growth"  # relative link
    assert second["published"] == "2025-12-15T11:30:00+00:00"  # +0100 normalised to UTC
    assert second["summary"] == "Analysts & investors expect the AI tools market to keep growing."
    assert third["published"] == "2025-06-01T08:00:00+00:00"


def test_atom_entries_with_html_and_xhtml_content() -> None:
    title, articles = parse_feed((DATA / "atom.xml").read_bytes(), url=FEED_URL, name="Notes")
    assert title == "Notes"  # the name given wins over the feed's own title
    assert [a.summary for a in articles] == [
        "We measure how retrieval changes scaling behaviour.",
        "An echo of a story already covered elsewhere.",
    ]
    assert articles[1].published == datetime(2025, 12, 20, 8, tzinfo=UTC)
    assert articles[0].guid == "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"


def test_json_feed_items() -> None:
    body = (DATA / "feed.json").read_bytes()
    title, articles = parse_feed(body, url="https://digest.example/feed.json")
    assert title == "JSON Digest"
    agents, linked, undated = (article.to_json() for article in articles)
    assert agents["url"] == "https://digest.example/posts/agents"  # fragment dropped
    assert agents["summary"] == "A gentle introduction to tool-using agents."
    assert agents["published"] == "2025-12-28T12:00:00+00:00"
    assert linked["summary"].startswith("Linked from elsewhere")
    assert (undated["url"], undated["published"]) == ("https://digest.example/posts/undated", None)
    assert undated["summary"] == "Plain text content, no date."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ((DATA / "malformed.xml").read_bytes(), "not a readable feed"),
        ((DATA / "malformed.json").read_bytes(), "not valid JSON"),
        (b'{"version": "1", "items": []}', "not a JSON Feed"),
        (b'{"version": "https://jsonfeed.org/version/1.1"}', "no items"),
        (b"<html><body>just a page</body></html>", "not a readable feed"),
        (b"", "not a readable feed"),
        (b"/etc/passwd", "not a readable feed"),  # never opened as a file name
    ],
)
def test_malformed_documents_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(MalformedFeedError, match=message):
        parse_feed(body, url=FEED_URL)


def test_feed_sniffing_and_html_to_text() -> None:
    for name in ("rss2.xml", "atom.xml", "feed.json"):
        assert looks_like_feed((DATA / name).read_bytes())
    assert not looks_like_feed(b"<!doctype html><html></html>")
    assert not looks_like_feed(b'{"not": "a feed"}')
    assert html_to_text("<p>a&amp;b</p><p>c<style>x{}</style></p>") == "a&b c"
    assert html_to_text("word " * 10, limit=12) == "word word…"


def fetcher_for(connector: LoopbackConnector, resolver: MapResolver) -> SafeFetcher:
    return SafeFetcher(FetchPolicy(), resolver=resolver, connector=connector)


def sources(*names: str) -> list[Any]:
    return [f"http://feeds.example/feeds/{name}" for name in names]


async def fetch(
    worker: FeedFetcher, shelf: ArtifactShelf, items: list[Any], **params: Any
) -> dict[str, Any]:
    result = await worker.process("fetch", {"sources": items}, params, shelf.context())
    assert result.summary.method == METHOD
    assert result.summary.usage == Usage()
    return result.output


@pytest.mark.anyio
async def test_fetches_parses_and_deduplicates_across_feeds(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver, shelf: ArtifactShelf
) -> None:
    worker = FeedFetcher(fetcher_for(connector, resolver))
    items = [*sources("rss2.xml", "atom.xml", "feed.json"), {"url": sources("malformed.xml")[0]}]
    result = await worker.process("fetch", {"sources": items}, {}, shelf.context())
    out = result.output
    titles = [a["title"] for a in out["articles"]]
    assert titles == [
        "Scaling laws for retrieval-augmented models",  # 2025-12-31, newest first
        "Open models close the gap with proprietary systems",
        "Agents that use tools, explained",
        "AI tools market grows 40% in a year",  # the Atom echo (same title) is dropped
        "Regulators publish guidance on model audits",
        "An undated note",  # undated last; the JSON item with an RSS item's URL is dropped
    ]
    assert (out["sources_fetched"], out["sources_failed"], out["method"]) == (3, 1, "feed-fetch")
    [error] = out["errors"]
    assert error["url"] == sources("malformed.xml")[0]
    assert error["code"] == "malformed_feed"
    assert [s["status"] for s in out["sources"]] == ["fetched"] * 3 + ["failed"]
    assert result.summary.quality_score == 75.0
    assert result.summary.continue_pipeline
    assert [p for p, _ in shelf.progress] == [10, 30, 80, 100]
    assert set(connector.addresses) == {PUBLIC_IP}


@pytest.mark.anyio
async def test_limits_by_count_age_and_per_feed(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver, shelf: ArtifactShelf
) -> None:
    worker = FeedFetcher(fetcher_for(connector, resolver))
    items = sources("rss2.xml", "feed.json")
    out = await fetch(worker, shelf, items, max_articles=2)
    assert [a["title"] for a in out["articles"]] == [
        "Open models close the gap with proprietary systems",
        "Agents that use tools, explained",
    ]
    # The context clock says 2026-01-01: ten days back is 2025-12-22; undated articles stay.
    out = await fetch(worker, shelf, items, max_age_days=10)
    assert [a["title"] for a in out["articles"]] == [
        "Open models close the gap with proprietary systems",
        "Agents that use tools, explained",
        "An undated note",
    ]
    out = await fetch(worker, shelf, items, per_feed_limit=1)
    assert [a["title"] for a in out["articles"]] == [
        "Open models close the gap with proprietary systems",
        "Agents that use tools, explained",
    ]


@pytest.mark.anyio
async def test_a_repeated_fetch_is_conditional_and_304_reuses_the_articles(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver, shelf: ArtifactShelf
) -> None:
    worker = FeedFetcher(fetcher_for(connector, resolver))
    items = [*sources("rss2.xml"), "http://feeds.example/plain/atom.xml"]
    first = await fetch(worker, shelf, items)
    second = await fetch(worker, shelf, items)
    assert second["articles"] == first["articles"]
    assert [s["status"] for s in second["sources"]] == ["not_modified", "fetched"]
    assert server.not_modified["/feeds/rss2.xml"] == 1
    assert server.hits["/feeds/rss2.xml"] == 2
    sent = [headers for path, headers in server.headers if path == "/feeds/rss2.xml"]
    assert "if-none-match" not in sent[0]
    assert sent[1]["if-none-match"].startswith('"')
    # No validators were offered for the plain feed, so it is fetched in full every time.
    assert all("if-none-match" not in h for p, h in server.headers if p.startswith("/plain/"))


@pytest.mark.anyio
async def test_the_default_policy_refuses_loopback_sources(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver, shelf: ArtifactShelf
) -> None:
    worker = FeedFetcher(SafeFetcher(resolver=resolver, connector=connector))
    items = [server.url("/feeds/rss2.xml"), *sources("atom.xml")]
    out = await fetch(worker, shelf, items)
    assert out["errors"][0]["code"] == "unsafe_url"
    assert out["sources_fetched"] == 1
    assert connector.addresses == [PUBLIC_IP]
    assert server.hits["/feeds/rss2.xml"] == 0


@pytest.mark.anyio
async def test_a_policy_is_enough_to_configure_the_worker(
    server: FeedServer, shelf: ArtifactShelf
) -> None:
    # FetchPolicy alone builds a real SafeFetcher; loopback must be allowed explicitly.
    worker = FeedFetcher(FetchPolicy(allow_loopback=True))
    out = await fetch(worker, shelf, [server.url("/feeds/atom.xml")])
    assert len(out["articles"]) == 2


@pytest.mark.anyio
async def test_the_stage_fails_only_when_every_source_failed(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver, shelf: ArtifactShelf
) -> None:
    worker = FeedFetcher(fetcher_for(connector, resolver))
    with pytest.raises(StageFailedError, match="all 2 source") as caught:
        await fetch(worker, shelf, sources("malformed.json", "absent.xml"))
    assert [e["code"] for e in caught.value.details["errors"]] == ["malformed_feed", "fetch_failed"]
    with pytest.raises(UnsafeURLError, match="no source is safe"):
        await fetch(worker, shelf, ["http://127.0.0.1/feed", "ftp://feeds.example/feed"])
    assert connector.addresses == [PUBLIC_IP, PUBLIC_IP]  # the unsafe ones were never dialled


@pytest.mark.parametrize(
    ("inputs", "params"),
    [
        ({}, {}),
        ({"sources": []}, {}),
        ({"sources": "http://feeds.example/feed"}, {}),
        ({"sources": [{"title": "no url"}]}, {}),
        ({"sources": [{"url": "http://a.example/", "title": 3}]}, {}),
        ({"sources": ["http://a.example/"] * 101}, {}),
        ({"sources": ["http://a.example/"]}, {"max_articles": 0}),
        ({"sources": ["http://a.example/"]}, {"max_articles": True}),
        ({"sources": ["http://a.example/"]}, {"per_feed_limit": 1.5}),
        ({"sources": ["http://a.example/"]}, {"max_age_days": "7"}),
    ],
)
def test_handshake_refuses_unusable_input(inputs: dict[str, Any], params: dict[str, Any]) -> None:
    with pytest.raises(BadInputError):
        FeedFetcher().check_input("fetch", inputs, params)


def test_declares_itself_and_estimates() -> None:
    worker = FeedFetcher(concurrency=2)
    assert (worker.name, worker.info.actions) == ("feed_fetcher", ("fetch",))
    with pytest.raises(BadInputError, match="no action"):
        worker.check_input("granulate", {"sources": ["http://a.example/"]}, {})
    estimate = worker.estimate(
        "fetch", {"sources": [f"http://a{i}.example/" for i in range(5)]}, {}
    )
    assert estimate.duration_ms == 1500
    assert estimate.prompt_tokens == 0


@pytest.mark.anyio
async def test_the_cache_keeps_only_the_most_recent_feeds(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver, shelf: ArtifactShelf
) -> None:
    worker = FeedFetcher(fetcher_for(connector, resolver), cache_size=1)
    for name in ("rss2.xml", "atom.xml", "rss2.xml", "rss2.xml"):
        await fetch(worker, shelf, sources(name))
    assert server.hits["/feeds/rss2.xml"] == 3
    assert server.not_modified["/feeds/rss2.xml"] == 1  # only the last one: atom evicted rss2


@pytest.mark.anyio
async def test_local_files_when_the_policy_allows_them(shelf: ArtifactShelf) -> None:
    worker = FeedFetcher(FetchPolicy(allow_file=True, file_root=DATA))
    out = await fetch(worker, shelf, [(DATA / "atom.xml").as_uri()])
    assert [a["source"] for a in out["articles"]] == ["Research Notes"] * 2
    with pytest.raises(UnsafeURLError):
        await fetch(FeedFetcher(), shelf, [(DATA / "atom.xml").as_uri()])
