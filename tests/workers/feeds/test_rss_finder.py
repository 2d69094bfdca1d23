"""`RssSourceFinder`: the curated catalogue, its search, and feed discovery on local pages."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from aifactory._exceptions import BadInputError
from aifactory.models import Usage
from aifactory.workers.feeds.netguard import SafeFetcher
from aifactory.workers.feeds.rss_finder import (
    COMMON_FEED_PATHS,
    METHOD,
    CatalogueEntry,
    RssSourceFinder,
    discover_feeds,
    load_catalogue,
    search_catalogue,
    search_terms,
)

from ..conftest import ArtifactShelf
from .conftest import PUBLIC_IP, FeedServer, LoopbackConnector, MapResolver

CATEGORIES = {"technology", "ai", "business", "science", "health", "education", "finance"}


def test_the_packaged_catalogue_is_curated_and_well_formed() -> None:
    catalogue = load_catalogue()
    assert 30 <= len(catalogue) <= 60
    assert {entry.category for entry in catalogue} == CATEGORIES
    assert len({entry.url for entry in catalogue}) == len(catalogue)
    for entry in catalogue:
        parts = urllib.parse.urlsplit(entry.url)
        assert parts.scheme == "https", entry.url
        assert parts.hostname
        assert "." in entry.site  # the publisher's site, which may differ from the feed host
        assert entry.title
        assert entry.topics
        assert entry.language == "en"


def test_a_catalogue_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(BadInputError, match="malformed source catalogue"):
        load_catalogue(b'{"sources": [{"title": "no url"}]}')
    with pytest.raises(BadInputError, match="malformed source catalogue"):
        load_catalogue(b"not json")


def test_query_words_are_content_words_folded_to_singular() -> None:
    assert search_terms("Market analysis for AI tools", "Studies") == [
        "market",
        "analysis",
        "ai",
        "tool",
        "study",
    ]
    assert search_terms("the of and") == []


CATALOGUE = (
    CatalogueEntry("AI Tools Weekly", "https://a.example/feed", "a.example", "ai", ("ai", "tools")),
    CatalogueEntry("Markets Daily", "https://m.example/rss", "m.example", "finance", ("markets",)),
    CatalogueEntry(
        "Tools and AI", "https://t.example/atom", "t.example", "technology", ("gadgets",)
    ),
    CatalogueEntry("Le Monde IA", "https://l.example/rss", "l.example", "ai", ("ai",), "fr"),
)


def test_search_scores_topic_matches_over_title_matches() -> None:
    matches = search_catalogue(CATALOGUE, search_terms("AI tools market"), 10)
    assert [(m.entry.title, m.score, m.matched) for m in matches] == [
        ("AI Tools Weekly", 0.667, ("ai", "tool")),  # (2 + 2) / (2 * 3)
        ("Le Monde IA", 0.333, ("ai",)),
        ("Markets Daily", 0.333, ("market",)),
        ("Tools and AI", 0.333, ("ai", "tool")),  # title only: (1 + 1) / 6
    ]
    assert len(search_catalogue(CATALOGUE, ["ai"], 2)) == 2
    english = search_catalogue(CATALOGUE, ["ai"], 10, language="EN")
    assert "Le Monde IA" not in [m.entry.title for m in english]
    assert search_catalogue(CATALOGUE, ["kubernetes"], 10) == []


def test_discover_feeds_reads_alternate_links() -> None:
    html = """<!doctype html><html><head>
      <base href="/blog/">
      <link rel="alternate" type="application/rss+xml" title="RSS" href="feed.xml">
      <LINK REL="Alternate Feed" TYPE="application/atom+xml; charset=utf-8" HREF="/atom.xml#top">
      <link rel="alternate" type="application/feed+json" href="https://cdn.example/feed.json">
      <link rel="alternate" type="application/rss+xml" href="feed.xml">
      <link rel="alternate" type="text/html" hreflang="fr" href="/fr/">
      <link rel="stylesheet" type="application/rss+xml" href="/not-alternate.xml">
      <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
      <link rel="alternate" type="application/rss+xml" href="">
    </head><body><a href="/rss.xml">RSS</a></body></html>"""
    assert discover_feeds(html, "https://site.example/post/1") == [
        "https://site.example/blog/feed.xml",
        "https://site.example/atom.xml",
        "https://cdn.example/feed.json",
    ]
    assert discover_feeds("<html><head></head></html>", "https://site.example/") == []
    assert discover_feeds(
        "<link rel=alternate type=application/rss+xml href=rss>", "https://s.example/a/b"
    ) == ["https://s.example/a/rss"]


async def find(
    worker: RssSourceFinder, shelf: ArtifactShelf, inputs: dict[str, Any], **params: Any
) -> tuple[dict[str, Any], Any]:
    result = await worker.process("find_sources", inputs, params, shelf.context())
    assert result.summary.method == METHOD == result.output["method"]
    assert result.summary.usage == Usage()
    json.dumps(result.output)  # JSON-compatible
    return result.output, result.summary


@pytest.mark.anyio
async def test_finds_catalogue_sources_for_a_topic(shelf: ArtifactShelf) -> None:
    out, summary = await find(
        RssSourceFinder(), shelf, {"topic": "Market analysis for AI tools"}, max_sources=3
    )
    assert [s["title"] for s in out["sources"]] == [
        "VentureBeat AI",
        "AWS Machine Learning Blog",
        "The Economist: Business",
    ]
    first = out["sources"][0]
    assert first["matched"] == ["market", "ai", "tool"]
    assert (first["score"], first["origin"]) == (0.75, "catalogue")
    assert out["query"] == ["market", "analysis", "ai", "tool"]
    assert summary.continue_pipeline
    assert "no LLM" in summary.notes[0]
    assert [p for p, _ in shelf.progress] == [10, 30, 80, 100]


@pytest.mark.anyio
async def test_keywords_language_and_the_sources_alias_for_the_count(shelf: ArtifactShelf) -> None:
    worker = RssSourceFinder(CATALOGUE)
    out, _ = await find(worker, shelf, {"keywords": ["AI"]}, sources=1)
    assert [s["url"] for s in out["sources"]] == ["https://a.example/feed"]
    out, _ = await find(worker, shelf, {"keywords": "ai"}, language="fr")
    assert [s["url"] for s in out["sources"]] == ["https://l.example/rss"]
    out, _ = await find(worker, shelf, {"keywords": ["ai"]}, sources=1, max_sources=2)
    assert len(out["sources"]) == 2  # max_sources wins over the template's name


@pytest.mark.anyio
async def test_nothing_found_stops_the_pipeline_cleanly(shelf: ArtifactShelf) -> None:
    out, summary = await find(RssSourceFinder(CATALOGUE), shelf, {"topic": "Kubernetes"})
    assert out["sources"] == []
    assert not summary.continue_pipeline


def finder(connector: LoopbackConnector, resolver: MapResolver) -> RssSourceFinder:
    return RssSourceFinder(CATALOGUE, fetcher=SafeFetcher(resolver=resolver, connector=connector))


@pytest.mark.anyio
async def test_discovers_feeds_advertised_by_a_page_before_catalogue_matches(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver, shelf: ArtifactShelf
) -> None:
    out, _ = await find(
        finder(connector, resolver),
        shelf,
        {"topic": "AI tools"},
        discover_from=["http://feeds.example/page"],
        max_sources=3,
    )
    assert [(s["url"], s["origin"]) for s in out["sources"]] == [
        ("http://feeds.example/feeds/rss2.xml", "discovered"),
        ("http://feeds.example/feeds/atom.xml", "discovered"),
        ("https://a.example/feed", "catalogue"),
    ]
    assert out["discovered"] == 2
    assert server.hits["/page"] == 1
    assert connector.addresses == [PUBLIC_IP]  # discovered feeds are listed, not fetched


@pytest.mark.anyio
async def test_probes_common_paths_when_a_page_advertises_no_feed(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver, shelf: ArtifactShelf
) -> None:
    worker = finder(connector, resolver)
    out, _ = await find(worker, shelf, {}, discover_from=["http://feeds.example/bare/page"])
    assert [s["url"] for s in out["sources"]] == ["http://feeds.example/atom.xml"]
    probed = COMMON_FEED_PATHS[: COMMON_FEED_PATHS.index("/atom.xml") + 1]
    assert [path for path, _ in server.headers] == ["/bare/page", *probed]
    assert connector.addresses == [PUBLIC_IP] * (1 + len(probed))

    server.reset()
    out, summary = await find(
        worker,
        shelf,
        {},
        discover_from=["http://feeds.example/bare/page"],
        probe_common_paths=False,
    )
    assert out["sources"] == []
    assert not summary.continue_pipeline
    assert list(server.hits) == ["/bare/page"]


@pytest.mark.anyio
async def test_a_page_that_is_a_feed_is_taken_and_failures_are_reported(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver, shelf: ArtifactShelf
) -> None:
    pages = [
        "http://feeds.example/feeds/feed.json",
        "http://feeds.example/missing",
        server.url("/page"),  # loopback: refused by the default policy
        "http://169.254.169.254/latest/meta-data",
    ]
    out, _ = await find(finder(connector, resolver), shelf, {}, discover_from=pages)
    assert [s["url"] for s in out["sources"]] == ["http://feeds.example/feeds/feed.json"]
    assert [(e["url"], e["code"]) for e in out["errors"]] == [
        ("http://feeds.example/missing", "http_status"),
        (server.url("/page"), "unsafe_url"),
        ("http://169.254.169.254/latest/meta-data", "unsafe_url"),
    ]
    assert connector.addresses == [PUBLIC_IP, PUBLIC_IP]
    assert server.hits["/page"] == 0


@pytest.mark.parametrize(
    ("inputs", "params"),
    [
        ({}, {}),
        ({"topic": "the"}, {}),
        ({"topic": 5}, {}),
        ({"topic": "x" * 501}, {}),
        ({"keywords": [1]}, {}),
        ({"keywords": ["ai"] * 101}, {}),
        ({"topic": "ai"}, {"max_sources": 0}),
        ({"topic": "ai"}, {"max_sources": 101}),
        ({"topic": "ai"}, {"sources": "ten"}),
        ({"topic": "ai"}, {"discover_from": ["http://a.example/"] * 21}),
        ({"topic": "ai"}, {"language": 3}),
    ],
)
def test_handshake_refuses_unusable_queries(inputs: dict[str, Any], params: dict[str, Any]) -> None:
    with pytest.raises(BadInputError):
        RssSourceFinder(CATALOGUE).check_input("find_sources", inputs, params)


def test_declares_itself_and_estimates() -> None:
    worker = RssSourceFinder(CATALOGUE)
    assert (worker.name, worker.info.actions) == ("rss_source_finder", ("find_sources",))
    estimate = worker.estimate("find_sources", {"topic": "ai"}, {"discover_from": ["http://a/"]})
    assert estimate.duration_ms == 2010
    assert estimate.prompt_tokens == 0
