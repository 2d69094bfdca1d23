"""`FactoryConfig`: everything an embedded factory is built from, in one value."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path

import anyio
import attrs

from ._clock import Clock, IdFactory, RandomIds, SystemClock
from .auth import PasswordHasher
from .llm import LLMConfig
from .models import StagePolicy
from .orchestrator import RetryPolicy, StoragePrices
from .orchestrator.live import DEFAULT_TIMEOUTS
from .storage import PlacementPolicy, StorageConfig
from .workers.base import Worker
from .workers.host import STAGE_NAMESPACE
from .workers.netguard import FetchPolicy
from .workers.rss_finder import CatalogueEntry

__all__ = ["DEFAULT_HOME", "EMBEDDED_STAGE_INLINE_BYTES", "FactoryConfig"]

DEFAULT_HOME = Path(".aifactory")
#: How large a stage payload of the embedded factory's in-process workers may be and still
#: travel inline (committed with its stage in the state database) instead of as a KV file.
EMBEDDED_STAGE_INLINE_BYTES = 64 * 1024


@attrs.frozen
class FactoryConfig:
    """How to build an embedded factory.

    `home` is the data folder (SQLite state in `state.sqlite3`, blobs under `blobs/`); `None`
    keeps everything in memory (a fresh `:memory:` database and `memory://` storage), for
    tests and throwaway notebooks. `workers=None` means the built-in workers.
    `api_rate_limits` holds client organisations to their tier's requests a minute over HTTP.

    `timeouts` are the stages' default schedule-to-start, start-to-close and heartbeat limits;
    `cache_ttl_s` how long stage results are reused for equal inputs; `sleep` is what retry
    backoff waits with (inject a recorder to test backoff without waiting). `llm` configures
    the language model the built-in workers and recommendations use (none: their non-LLM
    methods); `fetch_policy` what the feed workers may fetch (default: public http/https);
    `feed_catalogue` the feeds the RSS source finder searches (default: the curated catalogue
    shipped with aifactory; `aifactory.workers.load_catalogue(json_bytes)` reads your own).

    `stage_inline_max_bytes` is where stage inputs and outputs stop travelling inline when
    `storage` is not given (default 64 KiB): the in-process workers hand them over without
    a copy, and they are committed with their stage in the state database, as durable as the
    stage itself. Everything else keeps the seed's wire placement (inline under 1 KiB, KV up
    to 25 MiB, R2 above). `None` applies the wire placement to stage payloads too.
    """

    home: Path | None = DEFAULT_HOME
    storage: StorageConfig | None = None
    clock: Clock = attrs.field(factory=SystemClock)
    ids: IdFactory = attrs.field(factory=RandomIds)
    password_hasher: PasswordHasher = attrs.field(factory=PasswordHasher)
    session_lifetime: timedelta = timedelta(hours=24)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    prices: StoragePrices = attrs.field(factory=StoragePrices)
    max_workers: int = 4
    api_rate_limits: bool = True
    timeouts: StagePolicy = DEFAULT_TIMEOUTS
    cache_ttl_s: float = 3600.0
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    workers: Sequence[Worker] | None = None
    llm: LLMConfig | None = None
    fetch_policy: FetchPolicy | None = None
    feed_catalogue: tuple[CatalogueEntry, ...] | None = None
    stage_inline_max_bytes: int | None = EMBEDDED_STAGE_INLINE_BYTES

    @classmethod
    def from_environment(
        cls, home: str | Path | None = None, *, with_llm: bool = False
    ) -> FactoryConfig:
        """A config whose home is `home`, else `$AIFACTORY_HOME`, else `./.aifactory`.

        The language model comes from `AIFACTORY_LLM_MODEL`, `AIFACTORY_LLM_BASE_URL` and
        `AIFACTORY_LLM_API_KEY` / `OPENAI_API_KEY` when `with_llm` is set. Only the CLI reads
        the environment; library code receives a config.
        """
        chosen = home if home is not None else os.environ.get("AIFACTORY_HOME", DEFAULT_HOME)
        llm = LLMConfig.from_environment(os.environ) if with_llm else None
        return cls(home=Path(chosen), llm=llm)

    @property
    def database(self) -> str:
        """Where the state database lives."""
        return ":memory:" if self.home is None else str(self.home / "state.sqlite3")

    def storage_config(self) -> StorageConfig:
        """Where blobs live: the given storage, else `home/blobs`, else fresh memory (with
        stage payloads inline up to `stage_inline_max_bytes`).

        Raises `BadInputError` if `stage_inline_max_bytes` is not a valid inline limit.
        """
        if self.storage is not None:
            return self.storage
        placements = (
            {}
            if self.stage_inline_max_bytes is None
            else {STAGE_NAMESPACE: PlacementPolicy(inline_max_bytes=self.stage_inline_max_bytes)}
        )
        if self.home is None:
            return StorageConfig.memory(placements=placements)
        return StorageConfig.local(self.home / "blobs", placements=placements)
