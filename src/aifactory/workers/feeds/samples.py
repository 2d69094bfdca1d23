"""Sample feeds shipped with aifactory (`samples/`), for the demo and for trying a pipeline
without a network.

They are data: an RSS 2.0 and an Atom feed of made-up news about AI tools, and an RSS feed of
made-up business news that is not all on topic (a farmers' market, an instruction planted in
an article). `sample_catalogue` lists them as `file:` URLs under their folder and
`sample_policy` is the fetch policy that allows reading exactly that folder, so a pipeline
reads them through the same `SafeFetcher` and parser as feeds on the web.
"""

from __future__ import annotations

import contextlib
import importlib.resources
from collections.abc import Iterator
from pathlib import Path

from .fetch_policy import FetchPolicy
from .rss_finder import CatalogueEntry

__all__ = ["SAMPLE_FEEDS", "sample_catalogue", "sample_feeds", "sample_policy"]

#: (file, title, site, category, topics) of each sample feed.
SAMPLE_FEEDS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    (
        "ai-tools-weekly.xml",
        "AI Tools Weekly",
        "ai-tools-weekly.example",
        "technology",
        ("ai", "tools", "market", "pricing", "adoption"),
    ),
    (
        "devtools-review.xml",
        "DevTools Review",
        "devtools-review.example",
        "technology",
        ("ai", "tools", "developer", "reviews", "analysis"),
    ),
    (
        "business-ledger.xml",
        "Business Ledger",
        "business-ledger.example",
        "business",
        ("business", "market", "ai", "startups", "local news"),
    ),
)


@contextlib.contextmanager
def sample_feeds() -> Iterator[Path]:
    """The folder of the sample feeds, as a real path for as long as the context lasts (a
    temporary copy if aifactory is installed in a zip file)."""
    folder = importlib.resources.files(__package__).joinpath("samples")
    with importlib.resources.as_file(folder) as path:
        yield Path(path).resolve()


def sample_catalogue(root: Path) -> tuple[CatalogueEntry, ...]:
    """The sample feeds in `root` (see `sample_feeds`) as a feed catalogue of `file:` URLs."""
    return tuple(
        CatalogueEntry(title, (root / name).as_uri(), site, category, topics)
        for name, title, site, category, topics in SAMPLE_FEEDS
    )


def sample_policy(root: Path) -> FetchPolicy:
    """A fetch policy that reads files under `root` only (and public http/https as usual)."""
    return FetchPolicy(allow_file=True, file_root=root)
