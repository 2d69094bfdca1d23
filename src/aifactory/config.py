"""`FactoryConfig`: everything an embedded factory is built from, in one value.

`FactoryConfig.from_environment` (used by the `aifactory` command) is the only place that reads
the environment; library code receives a config.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import attrs
import fsspec  # type: ignore[import-untyped]
import fsspec.core  # type: ignore[import-untyped]

from ._clock import Clock, IdFactory, RandomIds, SystemClock
from ._exceptions import BadInputError, StorageError
from ._tracing import otlp_provider
from .auth import PasswordHasher
from .kam.notifier import EventNotifier, Notifier
from .kam.webhooks import Webhook
from .llm import LLMConfig
from .models import LoginThrottle, StagePolicy
from .orchestrator import RetryPolicy, StoragePrices
from .orchestrator.live import DEFAULT_TIMEOUTS
from .state import is_postgres_url
from .storage import PlacementPolicy, StorageConfig, StorageKey
from .storage._roots import check_protocol
from .storage.encryption import parse_keys
from .workers.base import Worker
from .workers.feeds.netguard import FetchPolicy
from .workers.feeds.rss_finder import CatalogueEntry
from .workers.host import STAGE_NAMESPACE

__all__ = [
    "DEFAULT_HOME",
    "EMBEDDED_STAGE_INLINE_BYTES",
    "MASTER_KEY_FILE",
    "STORAGE_KEYS_FILE",
    "FactoryConfig",
    "create_key_file",
    "create_storage_keys",
    "read_key_file",
]

DEFAULT_HOME = Path(".aifactory")
#: The file in a home that holds its blob encryption keys (made by `aifactory init`).
STORAGE_KEYS_FILE = "storage.keys"
MASTER_KEY_FILE = "master.key"
#: How large a stage payload of the embedded factory's in-process workers may be and still
#: travel inline (committed with its stage in the state database) instead of as a KV file.
EMBEDDED_STAGE_INLINE_BYTES = 64 * 1024
# `proto:/rest` or `proto:rest` (but not a Windows drive, `C:/...`): a URL missing a slash.
_ONE_SLASH = re.compile(r"([a-z][a-z0-9+.-]+):/?(?!/)")
# S3-compatible stores: the protocols an endpoint URL (R2, MinIO) applies to.
_S3_PROTOCOLS = frozenset({"s3", "s3a"})


def _home_path(value: str | os.PathLike[str] | None) -> Path | None:
    """`home` as a `Path` (`None` stays: everything in memory)."""
    if value is None or isinstance(value, Path):
        return value
    if not isinstance(value, str | os.PathLike):
        raise BadInputError(
            f"home must be a folder (a str or os.PathLike) or None, not {type(value).__name__}",
            details={"field": "home"},
        )
    return Path(value)


def _file_path(value: str | os.PathLike[str] | None) -> Path | None:
    if value is None or isinstance(value, Path):
        return value
    if not isinstance(value, str | os.PathLike):
        raise BadInputError(
            f"a file is a str or os.PathLike, not {type(value).__name__}",
            details={"field": "ca_bundle"},
        )
    return Path(value)


def _notifiers(value: Iterable[Notifier | EventNotifier]) -> tuple[Notifier | EventNotifier, ...]:
    return tuple(value)


def _webhooks(value: Iterable[Webhook]) -> tuple[Webhook, ...]:
    webhooks = tuple(value)
    if not all(isinstance(w, Webhook) for w in webhooks):
        raise BadInputError(
            "webhooks are aifactory.kam.webhooks.Webhook values", details={"field": "webhooks"}
        )
    return webhooks


def _check_state_url(instance: Any, attribute: Any, value: str | None) -> None:
    if value is not None and not is_postgres_url(value):
        raise BadInputError(
            f"the state location must be a postgresql:// URL, not {value.split('://')[0]!r}",
            details={"field": "state"},
        )


@attrs.frozen
class FactoryConfig:
    """How to build an embedded factory.

    `home` is the data folder (SQLite state in `state.sqlite3`, blobs under `blobs/`): a `str`
    or any `os.PathLike`, kept as a `Path`. `None` keeps everything in memory (a fresh
    `:memory:` database and `memory://` storage), for tests and throwaway notebooks.
    `workers=None` means the built-in workers.
    `api_rate_limits` holds client organisations to their tier's requests a minute over HTTP.

    `timeouts` are the stages' default schedule-to-start, start-to-close and heartbeat limits;
    `cache_ttl_s` how long stage results are reused for equal inputs; `sleep` is what retry
    backoff waits with (inject a recorder to test backoff without waiting). `llm` configures
    the language model the built-in workers and recommendations use (none: their non-LLM
    methods); `fetch_policy` what the feed workers may fetch (default: public http/https;
    `FetchPolicy(allow_loopback=True)` lets them reach this machine, for local tests only);
    `feed_catalogue` the feeds the RSS source finder searches (default: the curated catalogue
    shipped with aifactory; `aifactory.workers.load_catalogue(json_bytes)` reads your own).

    `stage_inline_max_bytes` is where stage inputs and outputs stop travelling inline when
    `storage` is not given or is given by URL (`with_storage_url`; default 64 KiB): the
    in-process workers hand them over without a copy, and they are committed with their stage
    in the state database, as durable as the stage itself. Everything else keeps the seed's
    wire placement (inline under 1 KiB, KV up to 25 MiB, R2 above). `None` applies the wire
    placement to stage payloads too.

    `notifiers` tell people about settled requests and budget thresholds besides the in-app
    notifications, which are always kept: each `Notifier` once per user of the client, each
    `EventNotifier` once per event (`aifactory.kam.notifier`). `webhooks` post those events,
    signed, to URLs of yours (`aifactory.kam.webhooks.Webhook`; their addresses must pass
    `fetch_policy`, and a receiver checks them with `aifactory.verify_webhook`).

    `state_url` puts the state in a PostgreSQL database (`postgresql://user@host/db`; the
    `postgres` extra) instead of `home`'s SQLite file, so that several processes share it.
    Executions run under leases of `lease_s` seconds; with `recover` (the default) the
    factory resumes, as soon as it opens and then every `lease_s / 3`, the executions that
    a stopped process left running (a notebook that only reads can turn it off).
    Templates are cached for 24 hours; a change made by another process sharing the state is
    seen at the first read `template_check_s` seconds after the last check.

    `max_body_bytes` (default 1 MiB) is the largest request body the HTTP API reads: a
    larger one, declared or streamed, is refused with 413 as soon as it passes the limit.
    `login_throttle` says how failed logins lock an account or a client address for a
    while (`aifactory.models.LoginThrottle`; `LoginThrottle(enabled=False)` turns it off).

    `ca_bundle` is a PEM file of the CAs that worker and other aifactory services reached
    over `https://` must have certificates from (default: the system's CAs); certificates
    are always verified.

    `metrics` (default on) keeps Prometheus counters and histograms of stages and
    executions; `metrics_token` (`AIFACTORY_METRICS_TOKEN`) serves them at `/metrics` to
    callers that send it as a bearer token; without one `/metrics` is not served.

    `tracing` (the `otel` extra) makes OpenTelemetry spans of API calls, executions, stage
    attempts, the worker protocol and model calls (see `docs/observability.md`): `True`
    sends them to the global `TracerProvider` (which the application, or
    `opentelemetry-instrument`, sets up), a `TracerProvider` to that one; `False` (the
    default) makes none and imports nothing.

    Raises `BadInputError` for a `home` that is neither a path nor `None` and a `state_url`
    that is not a `postgresql://` URL (an unsupported storage location is refused when its
    `StorageConfig` is built).
    """

    home: Path | None = attrs.field(default=DEFAULT_HOME, converter=_home_path)
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
    state_url: str | None = attrs.field(default=None, validator=_check_state_url)
    lease_s: float = 30.0
    recover: bool = True
    template_check_s: float = 1.0
    notifiers: Sequence[Notifier | EventNotifier] = attrs.field(default=(), converter=_notifiers)
    webhooks: Sequence[Webhook] = attrs.field(default=(), converter=_webhooks)
    max_body_bytes: int = 1024 * 1024
    login_throttle: LoginThrottle = attrs.field(factory=LoginThrottle)
    ca_bundle: Path | None = attrs.field(default=None, converter=_file_path)
    metrics: bool = True
    metrics_token: str | None = attrs.field(default=None, repr=False)
    tracing: Any = False

    @classmethod
    def from_environment(
        cls,
        home: str | Path | None = None,
        *,
        with_llm: bool = False,
        storage: str | None = None,
        storage_endpoint: str | None = None,
        state: str | None = None,
        allow_loopback_feeds: bool | None = None,
        ca_bundle: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> FactoryConfig:
        """A config whose home is `home`, else `$AIFACTORY_HOME`, else `./.aifactory`.

        The state lives in the PostgreSQL database `state`, else `$AIFACTORY_STATE`, else in
        the home's SQLite file.

        Blobs live at `storage` (an fsspec URL or folder, e.g. `s3://bucket/prefix`), else
        `$AIFACTORY_STORAGE`, else `HOME/blobs`; an S3-compatible store (R2, MinIO) is reached
        at `storage_endpoint`, else `$AIFACTORY_STORAGE_ENDPOINT` (see `with_storage_url`).
        Credentials for S3 are never taken from here: s3fs reads them from the AWS environment
        (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...).

        The language model comes from `AIFACTORY_LLM_MODEL`, `AIFACTORY_LLM_BASE_URL` and
        `AIFACTORY_LLM_API_KEY` / `OPENAI_API_KEY` when `with_llm` is set.

        The feed workers may fetch from loopback addresses (`FetchPolicy(allow_loopback=True)`)
        when `allow_loopback_feeds` is set, else when `AIFACTORY_ALLOW_LOOPBACK_FEEDS` is `1`
        (or `true`, `yes`, `on`): for testing with a feed server on this machine only, since it
        lets anyone who can submit a feed URL reach services listening on the host.

        Services reached over `https://` are trusted by the CAs of `ca_bundle`, else of
        `AIFACTORY_CA_BUNDLE`, else of the system.

        Blobs are encrypted at rest with the keys of `AIFACTORY_STORAGE_KEY` (`id:secret`,
        several comma-separated, the first sealing new blobs), else of the home's
        `storage.keys` file when there is one (`aifactory init` makes it), else not at all.
        Per-client data keys wrapped by a master key seal new blobs when a master key is
        given: `AIFACTORY_MASTER_KEY` (`id:secret`, several comma-separated, the first
        wrapping new data keys), else the file `AIFACTORY_MASTER_KEY_FILE` names, else the
        home's `master.key` when there is one (`aifactory keys new-master` makes it).

        Account events are posted to the webhook at `AIFACTORY_WEBHOOK_URL`, signed with
        `AIFACTORY_WEBHOOK_SECRET` (both or neither), when it is set.

        Spans are made (`tracing`) when `AIFACTORY_TRACING` is `otlp` (exported over
        OTLP/HTTP to where the standard `OTEL_EXPORTER_OTLP_*` variables say, default
        `http://localhost:4318`, named by `OTEL_SERVICE_NAME`, default `aifactory`) or
        `global` (to the global `TracerProvider`, e.g. under `opentelemetry-instrument`).

        `environ` replaces `os.environ`. Only the CLI reads the environment; library code
        receives a config.

        Raises `BadInputError` for a malformed or unsupported storage URL or endpoint, an
        endpoint without an S3 storage URL, an `AIFACTORY_ALLOW_LOOPBACK_FEEDS` that is not
        a yes or no, or a webhook URL without a secret (or the other way round), a bad
        webhook URL or a short secret; and `StorageError` when the storage's fsspec
        implementation is not installed.
        """
        env = os.environ if environ is None else environ
        chosen = home if home is not None else env.get("AIFACTORY_HOME", DEFAULT_HOME)
        llm = LLMConfig.from_environment(env) if with_llm else None
        state_url = state if state is not None else env.get("AIFACTORY_STATE") or None
        loopback = (
            allow_loopback_feeds
            if allow_loopback_feeds is not None
            else _flag(env, "AIFACTORY_ALLOW_LOOPBACK_FEEDS")
        )
        policy = FetchPolicy(allow_loopback=True) if loopback else None
        config = cls(
            home=Path(chosen),
            llm=llm,
            state_url=state_url,
            fetch_policy=policy,
            webhooks=_webhooks_from(env),
            ca_bundle=ca_bundle or env.get("AIFACTORY_CA_BUNDLE") or None,
            metrics_token=env.get("AIFACTORY_METRICS_TOKEN") or None,
            tracing=_tracing_from(env),
        )
        # An empty variable counts as unset (`AIFACTORY_STORAGE= aifactory ...`); an empty
        # flag is a mistake, refused below.
        url = storage if storage is not None else env.get("AIFACTORY_STORAGE") or None
        endpoint = (
            storage_endpoint
            if storage_endpoint is not None
            else env.get("AIFACTORY_STORAGE_ENDPOINT") or None
        )
        if url is None:
            if endpoint is not None:
                raise BadInputError(
                    "a storage endpoint (--storage-endpoint, AIFACTORY_STORAGE_ENDPOINT) needs "
                    "an s3:// storage URL (--storage, AIFACTORY_STORAGE)"
                )
        else:
            config = config.with_storage_url(url, endpoint_url=endpoint)
        keys = _storage_keys_from(env, config.home)
        masters = _master_keys_from(env, config.home)
        if not keys and not masters:
            return config
        sealing = attrs.evolve(config.storage_config(), encryption_keys=keys, master_keys=masters)
        return attrs.evolve(config, storage=sealing)

    def with_storage_url(self, url: str, *, endpoint_url: str | None = None) -> FactoryConfig:
        """This config with its blobs at `url`: a local folder, a `file://` or `memory://`
        URL, or `s3://bucket/prefix`.

        The storage gets the placements `storage_config()` gives a home (stage payloads inline
        up to `stage_inline_max_bytes`), so a factory behaves the same on a local and an S3
        root. `endpoint_url` is the S3 API of an S3-compatible store such as R2 or MinIO
        (`storage_options={"s3": {"endpoint_url": ...}}`). URLs carry no credentials. Nothing
        is contacted here.

        Raises `BadInputError` for an unsupported protocol, an S3 URL without a bucket, a URL or
        endpoint with credentials or a query, an endpoint that is not an http(s) URL or is
        given for storage other than S3, and `StorageError` (saying what to install) when the
        protocol's implementation is missing.
        """
        storage = _storage_at(url, endpoint_url, self._stage_placements())
        return attrs.evolve(self, storage=storage)

    def make_home(self) -> None:
        """Create `home` (and missing parents) unless it exists or is `None`.

        A new home is the owner's only (0700, whatever the umask): it holds accounts,
        sessions, costs, blobs and keys. An existing folder keeps its mode. Raises
        `StorageError` when it cannot be created.
        """
        if self.home is not None:
            make_private_folder(self.home)

    @property
    def database(self) -> str:
        """Where the state lives: `state_url`, else the home's SQLite file (or memory)."""
        if self.state_url is not None:
            return self.state_url
        return ":memory:" if self.home is None else str(self.home / "state.sqlite3")

    def storage_config(self) -> StorageConfig:
        """Where blobs live: the given storage, else `home/blobs`, else fresh memory (with
        stage payloads inline up to `stage_inline_max_bytes`).

        Raises `BadInputError` if `stage_inline_max_bytes` is not a valid inline limit.
        """
        if self.storage is not None:
            return self.storage
        placements = self._stage_placements()
        if self.home is None:
            return StorageConfig.memory(placements=placements)
        return StorageConfig.local(self.home / "blobs", placements=placements)

    def _stage_placements(self) -> dict[str, PlacementPolicy]:
        if self.stage_inline_max_bytes is None:
            return {}
        return {STAGE_NAMESPACE: PlacementPolicy(inline_max_bytes=self.stage_inline_max_bytes)}


def make_private_folder(path: Path) -> None:
    """Create the folder `path` as 0700 (its missing parents as the umask says); an existing
    one is left as it is. Raises `StorageError` naming the folder."""
    if path.is_dir():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not path.is_dir():
            raise StorageError(f"{path} exists and is not a folder: give another home") from None
        return  # made by someone else meanwhile: theirs to keep
    except OSError as exc:
        raise StorageError(f"cannot create the folder {path}: {exc.strerror or exc}") from exc
    # mkdir's mode is filtered by the umask, which may leave group or other bits.
    os.chmod(path, 0o700)


def create_storage_keys(home: Path) -> Path | None:
    """Give `home` a `storage.keys` file with one new key (0600, whatever the umask), so
    that its blobs are encrypted at rest; `None` if it has one already (kept as it is).
    Raises `StorageError` when the file cannot be written."""
    path = home / STORAGE_KEYS_FILE
    key = StorageKey.generate(f"k-{secrets.token_hex(4)}")
    comment = (
        "aifactory blob encryption keys, id:secret; the first encrypts new blobs.\n"
        "Keep a copy apart from the blobs: without it they cannot be read."
    )
    return path if create_key_file(path, key, comment) else None


def _storage_keys_from(env: Mapping[str, str], home: Path | None) -> tuple[StorageKey, ...]:
    """The blob keys `AIFACTORY_STORAGE_KEY` holds, else the home's key file, else none."""
    given = env.get("AIFACTORY_STORAGE_KEY", "").strip()
    if given:
        return parse_keys(given)
    if home is None or not (home / STORAGE_KEYS_FILE).exists():
        return ()
    path = home / STORAGE_KEYS_FILE
    try:
        return parse_keys(path.read_text("utf-8"))
    except OSError as exc:
        raise StorageError(f"cannot read the storage keys {path}: {exc.strerror or exc}") from exc
    except BadInputError as exc:
        raise BadInputError(f"{path}: {exc.message}", details=exc.details) from exc


def _master_keys_from(env: Mapping[str, str], home: Path | None) -> tuple[StorageKey, ...]:
    """The master keys `AIFACTORY_MASTER_KEY` holds, else the file `AIFACTORY_MASTER_KEY_FILE`
    names, else the home's `master.key`, else none (there is never a default)."""
    given = env.get("AIFACTORY_MASTER_KEY", "").strip()
    if given:
        return parse_keys(given)
    named = env.get("AIFACTORY_MASTER_KEY_FILE", "").strip()
    path = Path(named) if named else home / MASTER_KEY_FILE if home is not None else None
    if path is None or (not named and not path.exists()):
        return ()
    return read_key_file(path)


def read_key_file(path: Path) -> tuple[StorageKey, ...]:
    """The keys in the key file `path` (`id:secret` lines). Raises `StorageError` when it
    cannot be read, `BadInputError` (naming the file, never its text) when it is malformed."""
    try:
        return parse_keys(path.read_text("utf-8"))
    except OSError as exc:
        raise StorageError(f"cannot read the key file {path}: {exc.strerror or exc}") from exc
    except BadInputError as exc:
        raise BadInputError(f"{path}: {exc.message}", details=exc.details) from exc


def create_key_file(path: Path, key: StorageKey, comment: str) -> bool:
    """Write `key` to a new file `path` (0600, whatever the umask) under `# comment` lines;
    `False` if the file exists (left as it is). Raises `StorageError` when it cannot be
    written."""
    text = "".join(f"# {line}\n" for line in comment.splitlines()) + f"{key.to_text()}\n"
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        raise StorageError(f"cannot create {path}: {exc.strerror or exc}") from exc
    try:
        os.chmod(path, 0o600)  # the umask may have taken bits off; it never adds any
        os.write(descriptor, text.encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return True


def _webhooks_from(env: Mapping[str, str]) -> tuple[Webhook, ...]:
    """The webhook `AIFACTORY_WEBHOOK_URL` and `AIFACTORY_WEBHOOK_SECRET` name, if any."""
    url = env.get("AIFACTORY_WEBHOOK_URL", "").strip()
    secret = env.get("AIFACTORY_WEBHOOK_SECRET", "")
    if not url and not secret:
        return ()
    if not url or not secret:
        raise BadInputError(
            "AIFACTORY_WEBHOOK_URL and AIFACTORY_WEBHOOK_SECRET go together: set both or neither",
            details={"variable": "AIFACTORY_WEBHOOK_SECRET" if url else "AIFACTORY_WEBHOOK_URL"},
        )
    return (Webhook(url, secret),)


_YES = frozenset({"1", "true", "yes", "on"})
_NO = frozenset({"", "0", "false", "no", "off"})


def _flag(env: Mapping[str, str], name: str) -> bool:
    """A yes/no environment variable (unset or empty: no). Raises `BadInputError`."""
    value = env.get(name, "").strip().lower()
    if value not in _YES | _NO:
        raise BadInputError(
            f"{name} must be 1 or 0 (true/false, yes/no, on/off), not {value[:20]!r}",
            details={"variable": name},
        )
    return value in _YES


def _tracing_from(env: Mapping[str, str]) -> Any:
    """`FactoryConfig.tracing` as `AIFACTORY_TRACING` asks. Raises `BadInputError`."""
    value = env.get("AIFACTORY_TRACING", "").strip().lower()
    if value in ("", "off", "0", "false", "no"):
        return False
    if value == "global":
        return True
    if value == "otlp":
        return otlp_provider(env.get("OTEL_SERVICE_NAME") or "aifactory")
    raise BadInputError(
        f"AIFACTORY_TRACING must be otlp, global or off, not {value[:20]!r}",
        details={"variable": "AIFACTORY_TRACING"},
    )


def _storage_at(
    url: str, endpoint_url: str | None, placements: Mapping[str, PlacementPolicy]
) -> StorageConfig:
    """The `StorageConfig` for a storage URL given on the command line; no I/O."""
    text = url.strip()
    if not text:
        raise BadInputError("the storage URL is empty: give a folder or s3://bucket/prefix")
    protocol = fsspec.core.split_protocol(text)[0]
    mistyped = _ONE_SLASH.match(text)
    if protocol is None and mistyped:
        # `s3:/bucket` would otherwise be a local folder named `s3:`: surely a typo.
        raise BadInputError(
            f"the storage URL {text!r} looks like a mistyped URL: write "
            f"{mistyped[1]}://{text[mistyped.end() :]}, or ./{text} for a folder",
            details={"protocol": mistyped[1]},
        )
    if protocol is None or protocol in ("file", "local"):
        if endpoint_url is not None:
            raise _endpoint_needs_s3(text)
        folder = text.split("://", 1)[1] if protocol else text
        return StorageConfig.local(Path(folder).expanduser(), placements=placements)
    # Refused rather than redacted: credentials come from the AWS environment, and a URL
    # ends up in process lists, shell histories and logs.
    location = text.split("://", 1)[1]
    authority = location.partition("/")[0]
    if "@" in authority or any(c in text for c in "?# \t\n"):
        raise BadInputError(
            "the storage URL must be protocol://bucket/prefix, without credentials, query or "
            "spaces (S3 credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
            details={"protocol": protocol},
        )
    check_protocol(text)
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        hint = "pip install 'aifactory[s3]'" if protocol in _S3_PROTOCOLS else str(exc)
        raise StorageError(
            f"storage on {protocol}:// needs its fsspec implementation: {hint}",
            details={"protocol": protocol},
        ) from exc
    options: dict[str, dict[str, str]] = {}
    if protocol in _S3_PROTOCOLS:
        if not authority:
            raise BadInputError(
                f"the storage URL names no bucket: use {protocol}://bucket/prefix",
                details={"protocol": protocol},
            )
        if endpoint_url is not None:
            options[protocol] = {"endpoint_url": _checked_endpoint(endpoint_url)}
    elif endpoint_url is not None:
        raise _endpoint_needs_s3(text)
    return StorageConfig(
        f"{protocol}://{location.rstrip('/')}", storage_options=options, placements=placements
    )


def _checked_endpoint(endpoint_url: str) -> str:
    text = endpoint_url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError(
            "the storage endpoint must be an http(s) URL, "
            "e.g. https://<account>.r2.cloudflarestorage.com"
        )
    if parts.username is not None or parts.password is not None or parts.query:
        raise BadInputError(
            "the storage endpoint must carry no credentials or query (S3 credentials come "
            "from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
        )
    return text


def _endpoint_needs_s3(url: str) -> BadInputError:
    return BadInputError(
        "a storage endpoint applies only to s3:// storage",
        details={"storage": url.split("://", 1)[0] if "://" in url else "folder"},
    )
