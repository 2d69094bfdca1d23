"""Deployments: the factory service and worker services, wired from files an operator writes.

A factory service runs the API (account side and orchestrator) over its home's state; workers
named in its *deployment file* are reached over HTTP, the rest run in process:

```json
{"key": "orchestrator:<base64url secret>",
 "workers": [{"worker": "content_granulator", "url": "http://127.0.0.1:8101"}]}
```

A worker service hosts some built-in workers and accepts requests signed with one of its
*trusted keys* (a file with one `id:secret` line per caller; `#` starts a comment). Worker
services and the factory must share blob storage (the same home, or the same `s3://` store):
data moves between stages by reference. `aifactory keys new ID` makes a key line; no key
ships with aifactory.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import attrs
from starlette.applications import Starlette

from .._clock import SystemClock
from .._embedded import EmbeddedFactory
from .._exceptions import BadInputError
from .._tracing import open_tracer
from ..auth.signing import SignatureVerifier, WorkerKey
from ..config import FactoryConfig
from ..llm.metering import MeteredLLM
from ..storage import BlobStore
from ..transports.http_workers import HttpWorkerTransport
from ..workers import WorkerHost, builtin_workers, check_worker_name
from .app import serving
from .services import ServiceClient, kam_app, orchestrator_app
from .worker_app import worker_app

__all__ = [
    "ALL_WORKERS",
    "Deployment",
    "RemoteWorker",
    "factory_service",
    "kam_service",
    "load_keys",
    "orchestrator_service",
    "worker_service",
]


#: The name that, alone, makes `worker_service` host every available worker
#: (`aifactory serve worker all`).
ALL_WORKERS = "all"


@attrs.frozen
class RemoteWorker:
    """A worker reached over HTTP."""

    worker: str
    url: str


@attrs.frozen
class Deployment:
    """How a service reaches the others: the key it signs with, the workers it calls over
    HTTP, the keys it trusts, and (when KAM and orchestrator are separate services) their
    URLs."""

    key: WorkerKey
    workers: tuple[RemoteWorker, ...] = ()
    trusted: tuple[WorkerKey, ...] = ()
    kam_url: str | None = None
    orchestrator_url: str | None = None

    @classmethod
    def load(cls, path: str | Path) -> Deployment:
        """Read a deployment file. Raises `BadInputError` naming what is wrong."""
        try:
            data = json.loads(Path(path).read_text("utf-8"))
            key = WorkerKey.parse(str(data["key"]))
            workers = tuple(
                RemoteWorker(check_worker_name(str(w["worker"])), str(w["url"]))
                for w in data.get("workers", [])
            )
            trusted = tuple(WorkerKey.parse(str(k)) for k in data.get("trust", []))
            kam, orchestrator = data.get("kam_url"), data.get("orchestrator_url")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadInputError(f"cannot read deployment file {path}: {exc}") from exc
        return cls(key, workers, trusted, kam, orchestrator)

    def verifier(self) -> SignatureVerifier:
        """A verifier for requests signed with one of the trusted keys."""
        if not self.trusted:
            raise BadInputError("the deployment trusts no key ('trust' is empty)")
        return SignatureVerifier({k.worker_id: k for k in self.trusted}, SystemClock())


def load_keys(path: str | Path) -> list[WorkerKey]:
    """The keys in a trusted-keys file. Raises `BadInputError`."""
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except OSError as exc:
        raise BadInputError(f"cannot read keys file {path}: {exc}") from exc
    return [
        WorkerKey.parse(line.strip())
        for line in lines
        if line.strip() and not line.lstrip().startswith("#")
    ]


def factory_service(config: FactoryConfig, deployment: Deployment | None = None) -> Starlette:
    """The factory's API for `config`, reaching `deployment`'s workers over HTTP (the
    others run in process)."""
    if deployment is None:
        return serving(EmbeddedFactory(config))
    return serving(_factory(config, deployment))


def _factory(config: FactoryConfig, deployment: Deployment) -> EmbeddedFactory:
    # Worker services over https are checked against `config.ca_bundle` (or the system's CAs).
    endpoints = [
        HttpWorkerTransport(w.url, w.worker, deployment.key, ca_bundle=config.ca_bundle)
        for w in deployment.workers
    ]
    return EmbeddedFactory(config, endpoints=endpoints)


def kam_service(config: FactoryConfig, deployment: Deployment) -> Starlette:
    """The account side as its own service; executions run at `deployment.orchestrator_url`.

    Raises `BadInputError` when the deployment names no orchestrator or trusts no key.
    """
    if not deployment.orchestrator_url:
        raise BadInputError("the deployment names no orchestrator_url")
    orchestrator = ServiceClient(
        deployment.orchestrator_url, deployment.key, ca_bundle=config.ca_bundle
    )
    # Executions run on the orchestrator services, which also take over orphaned ones.
    config = attrs.evolve(config, recover=False)
    return kam_app(_factory(config, deployment), deployment.verifier(), orchestrator)


def orchestrator_service(config: FactoryConfig, deployment: Deployment) -> Starlette:
    """The orchestrator as its own service, reporting to `deployment.kam_url`.

    Raises `BadInputError` when the deployment names no KAM service or trusts no key.
    """
    if not deployment.kam_url:
        raise BadInputError("the deployment names no kam_url")
    kam = ServiceClient(deployment.kam_url, deployment.key, ca_bundle=config.ca_bundle)
    return orchestrator_app(_factory(config, deployment), deployment.verifier(), kam)


def worker_service(
    config: FactoryConfig, names: Sequence[str], trusted: Sequence[WorkerKey]
) -> Starlette:
    """A service hosting the built-in workers `names`, for callers holding a `trusted` key;
    `names == ["all"]` (`ALL_WORKERS`) hosts every one (those of `config.workers` if given).

    Its `state.hosts` are the `WorkerHost`s it serves; the language model client it builds
    from `config.llm` is closed when the service stops (its lifespan).

    Raises `BadInputError` for no name, an unknown one, `all` among other names, or no
    trusted key.
    """
    if not trusted:
        raise BadInputError("a worker service needs at least one trusted key")
    tracer = open_tracer(config.tracing)
    llm = MeteredLLM(config.llm.build(), tracer) if config.llm is not None else None
    workers = (
        list(config.workers)
        if config.workers is not None
        else builtin_workers(llm, config.fetch_policy, config.feed_catalogue)
    )
    available = {w.name: w for w in workers}
    if ALL_WORKERS in names:
        if len(names) > 1:
            raise BadInputError(
                f"'{ALL_WORKERS}' serves every worker: name no other worker with it",
                details={"available": sorted(available)},
            )
        names = list(available)
    unknown = sorted(set(names) - set(available))
    if unknown or not names:
        raise BadInputError(
            f"unknown workers {unknown}" if unknown else "name at least one worker",
            details={"available": sorted(available)},
        )
    clock = SystemClock()
    blobs = BlobStore(config.storage_config(), clock)
    hosts = [WorkerHost(available[n], blobs, clock, config.ids) for n in names]
    verifier = SignatureVerifier({k.worker_id: k for k in trusted}, clock)
    app = worker_app(
        hosts, verifier, metrics_token=config.metrics_token, storage=blobs, tracer=tracer
    )
    app.state.hosts = hosts  # what it serves, for inspection
    close = getattr(llm, "aclose", None)
    if close is not None:

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            try:
                yield
            finally:
                await close()  # the model client's connections go with the service

        app.router.lifespan_context = lifespan
    return app
