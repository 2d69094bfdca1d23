"""Workers: the `Worker` base, the protocol host, and the built-in workers."""

from __future__ import annotations

from collections.abc import Sequence

from ..llm import LLM
from .base import Worker, WorkerContext, WorkerInfo, WorkerResult, check_worker_name
from .classifier import ContentClassifier
from .content_generator import ContentGenerator
from .feed_fetcher import FeedFetcher
from .fetch_policy import FetchPolicy
from .granulator import ContentGranulator
from .host import WorkerHost
from .netguard import SafeFetcher
from .report_builder import ReportBuilder
from .rss_finder import CatalogueEntry, RssSourceFinder, load_catalogue
from .topic_researcher import TopicResearcher
from .validator import Validator

__all__ = [
    "CatalogueEntry",
    "ContentClassifier",
    "ContentGenerator",
    "ContentGranulator",
    "FeedFetcher",
    "FetchPolicy",
    "ReportBuilder",
    "RssSourceFinder",
    "SafeFetcher",
    "TopicResearcher",
    "Validator",
    "Worker",
    "WorkerContext",
    "WorkerHost",
    "WorkerInfo",
    "WorkerResult",
    "builtin_workers",
    "check_worker_name",
    "load_catalogue",
]


def builtin_workers(
    llm: LLM | None = None,
    fetch_policy: FetchPolicy | None = None,
    feed_catalogue: Sequence[CatalogueEntry] | None = None,
) -> list[Worker]:
    """A fresh instance of every built-in worker.

    Workers that can use a language model get `llm` (none: their documented non-LLM
    methods); the feed workers fetch through a `SafeFetcher` with `fetch_policy` (default:
    public http/https addresses only); the RSS source finder searches `feed_catalogue`
    (default: the curated catalogue shipped with aifactory).
    """
    fetcher = SafeFetcher(fetch_policy)
    return [
        ContentGranulator(llm),
        Validator(llm),
        TopicResearcher(llm),
        RssSourceFinder(feed_catalogue, fetcher=fetcher),
        FeedFetcher(fetcher),
        ContentClassifier(llm),
        ContentGenerator(llm),
        ReportBuilder(llm),
    ]
