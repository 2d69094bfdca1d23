"""Fixtures the KAM tests share: a local feed server (tests/workers/feeds/conftest.py's
`FeedServer`, real RSS, Atom and JSON Feed files on 127.0.0.1), one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.workers.feeds.conftest import FeedServer


@pytest.fixture(scope="module")
def feeds() -> Iterator[FeedServer]:
    """The feed server, started for the module and stopped after it."""
    server = FeedServer()
    server.start()
    yield server
    server.stop()
