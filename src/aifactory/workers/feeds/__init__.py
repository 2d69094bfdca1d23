"""The feed workers and their network guard.

`RssSourceFinder` (`rss_finder`, searching the catalogue shipped here as `sources.json`) and
`FeedFetcher` (`feed_fetcher`) fetch only through a `SafeFetcher` (`netguard`), which applies
a `FetchPolicy` (`fetch_policy`, the address and size rules, no I/O) to the network; feeds
and pages are parsed by `parse` (RSS and Atom through feedparser, JSON Feed, no network).
Besides the worker framework (`aifactory.workers.base`), this package uses only
`aifactory.workers.text`.
"""

from __future__ import annotations

from .feed_fetcher import FeedFetcher
from .fetch_policy import FetchPolicy
from .netguard import SafeFetcher
from .rss_finder import CatalogueEntry, RssSourceFinder, load_catalogue

__all__ = [
    "CatalogueEntry",
    "FeedFetcher",
    "FetchPolicy",
    "RssSourceFinder",
    "SafeFetcher",
    "load_catalogue",
]
