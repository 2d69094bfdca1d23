"""Workers: the `Worker` base, the protocol host, and the built-in workers.

The framework is here (`base`, `model_calls`, `host`); the built-in workers are grouped by
what they are: `feeds` (feed workers and their network guard), `structure` (structure trees,
their validation and prose), `report` (the report builder and its renderings) and `analysis`
(topic research, article classification), all over the shared text methods of `text`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..llm import LLM
from .analysis import ContentClassifier, TopicResearcher
from .base import Worker, WorkerContext, WorkerInfo, WorkerResult, check_worker_name
from .feeds import (
    CatalogueEntry,
    FeedFetcher,
    FetchPolicy,
    RssSourceFinder,
    SafeFetcher,
    load_catalogue,
)
from .host import WorkerHost
from .report import ReportBuilder
from .structure import ContentGenerator, ContentGranulator, Validator

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
