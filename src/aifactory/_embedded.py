"""The embedded factory: every service wired together in one process.

`EmbeddedFactory` opens (or creates) the data folder, the SQLite state and the fsspec blob
storage, hosts the built-in workers behind in-process worker transports, and runs the
orchestrator's background executions in its task group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

from ._tracing import open_tracer
from .api.arguments import Param, params_of
from .api.operations import OPERATIONS
from .config import FactoryConfig
from .kam.accounts import AccountService
from .kam.administration import AdministrationService
from .kam.audit import AuditLog
from .kam.catalogue import TemplateCatalogue
from .kam.executions import ExecutionService
from .kam.metrics import MetricsService
from .kam.notifications import NotificationService
from .kam.notifier import EventNotifier, Notifier, Notifiers
from .kam.recommend import Recommender
from .kam.requests import RequestService
from .kam.settlement import Settlement
from .kam.templates import TemplateService, known_workers
from .kam.usage import UsageService
from .kam.webhooks import WebhookNotifier, WebhookService, check_webhooks
from .llm.metering import MeteredLLM
from .orchestrator import Orchestrator, WorkerRegistry
from .orchestrator.endpoints import InProcessWorkerTransport, WorkerTransport
from .orchestrator.telemetry import PrometheusTelemetry, Telemetry
from .state import open_store
from .storage import BlobStore
from .workers import builtin_workers
from .workers.host import WorkerHost

__all__ = ["EmbeddedFactory"]

Handler = Callable[..., Any]


class EmbeddedFactory:
    """All services of a factory in this process. Use as an async context manager.

    Workers listed in the config run here; `endpoints` add worker endpoints elsewhere (for
    example `HttpWorkerTransport`s to worker services), which the factory closes with itself.
    In-app notifications are always kept; `notifier` is one more notifier, besides the
    config's `notifiers` and `webhooks`.

    Raises `BadInputError` for a webhook whose address the config's `fetch_policy` refuses.
    """

    def __init__(
        self,
        config: FactoryConfig,
        notifier: Notifier | EventNotifier | None = None,
        endpoints: Sequence[WorkerTransport] = (),
    ) -> None:
        self.config = config
        check_webhooks(config.webhooks, config.fetch_policy)
        #: OpenTelemetry spans, when `config.tracing` asks for them.
        self.tracer = open_tracer(config.tracing)
        config.make_home()
        self.store = open_store(config.database)
        self.blobs = BlobStore(config.storage_config(), config.clock)
        self.audit = AuditLog(self.store, config.clock)
        self.notifications = NotificationService(self.store, config.clock)
        self.usage = UsageService(self.store, config.clock)
        self.metrics = MetricsService(self.store, config.clock)
        self.accounts = AccountService(
            self.store,
            self.audit,
            config.clock,
            config.ids,
            config.password_hasher,
            config.session_lifetime,
            config.login_throttle,
        )
        self.administration = AdministrationService(
            self.store, self.audit, config.clock, config.password_hasher
        )
        self.templates = TemplateService(
            self.store,
            self.audit,
            config.clock,
            TemplateCatalogue.builtin(),
            known_workers(config.workers),
            check_interval_s=config.template_check_s,
        )
        self.requests = RequestService(
            self.store, self.blobs, self.audit, config.clock, config.ids, self.templates
        )
        # Webhooks deliver in the background from when the factory opens until it closes.
        self.webhooks = WebhookService(
            self.store,
            [
                WebhookNotifier(
                    webhook,
                    self.store,
                    config.clock,
                    config.ids,
                    config.fetch_policy,
                    sleep=config.sleep,
                )
                for webhook in config.webhooks
            ],
        )
        extra = [*config.notifiers, *([] if notifier is None else [notifier])]
        self.notifiers = Notifiers(
            self.store, config.clock, config.ids, [*extra, *self.webhooks.notifiers]
        )
        self.settlement = Settlement(
            self.store, self.audit, config.clock, config.ids, self.notifiers
        )
        # Every model call is counted, in the meter of the stage attempt or recommendation
        # it is made for.
        self.llm = MeteredLLM(config.llm.build(), self.tracer) if config.llm is not None else None
        workers = (
            builtin_workers(self.llm, config.fetch_policy, config.feed_catalogue)
            if config.workers is None
            else list(config.workers)
        )
        self.requests.recommender = Recommender(self.templates, self.llm)
        # Local workers run in this process; `endpoints` reach workers elsewhere (HTTP), and
        # a worker reached remotely is not also run here.
        remote = {e.worker for e in endpoints}
        self.registry = WorkerRegistry(
            [
                *(
                    InProcessWorkerTransport(WorkerHost(w, self.blobs, config.clock, config.ids))
                    for w in workers
                    if w.name not in remote
                ),
                *endpoints,
            ],
            clock=config.clock,
        )
        #: Prometheus counters and histograms of this factory (`config.metrics`).
        self.telemetry = PrometheusTelemetry() if config.metrics else Telemetry()
        self.orchestrator = Orchestrator(
            self.store,
            self.blobs,
            self.registry,
            self.settlement,
            clock=config.clock,
            ids=config.ids,
            quota=self.settlement,
            retry=config.retry,
            prices=config.prices,
            timeouts=config.timeouts,
            max_workers=config.max_workers,
            cache_ttl_s=config.cache_ttl_s,
            sleep=config.sleep,
            lease_s=config.lease_s,
            recover=config.recover,
            telemetry=self.telemetry,
            tracer=self.tracer,
        )
        self.requests.orchestrator = self.orchestrator
        self.executions = ExecutionService(
            self.store, self.audit, config.clock, self.orchestrator, self.requests
        )
        self.handlers: dict[str, Handler] = self._handlers()
        #: Each operation's arguments, from its handler's signature (both transports bind
        #: with them).
        self.params: dict[str, tuple[Param, ...]] = {
            name: params_of(handler) for name, handler in self.handlers.items()
        }

    def _handlers(self) -> dict[str, Handler]:
        """Operation name → the service method that carries it out (given a principal), as
        the operation table names it."""
        found = {}
        for op in OPERATIONS:
            service, method = op.handler.split(".")
            found[op.name] = getattr(getattr(self, service), method)
        return found

    async def __aenter__(self) -> Self:
        # Webhooks first: recovery, as the orchestrator opens, may settle executions at once.
        await self.webhooks.__aenter__()
        try:
            await self.orchestrator.__aenter__()
        except BaseException as exc:
            await self.webhooks.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            try:
                await self.orchestrator.__aexit__(exc_type, exc, tb)
            finally:
                # After the last settlement; before the store closes (deliveries record).
                await self.webhooks.__aexit__(exc_type, exc, tb)
        finally:
            await self.registry.aclose()
            close = getattr(self.llm, "aclose", None)
            if close is not None:
                await close()
            await self.store.aclose()
