"""Requests from submission to deliverable: templates, execution, settlement, notification."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from .._clock import Clock, IdFactory
from .._exceptions import BadInputError, ConflictError, NotFoundError, QuotaExceededError
from ..models import (
    AuditEvent,
    Deliverable,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    Notification,
    Principal,
    Request,
    RequestStatus,
    StageRun,
    Template,
    Tier,
    Urgency,
)
from ..orchestrator import ExecutionReport, Orchestrator
from ..state.sqlite import SQLiteStore
from ..storage import BlobStore
from .audit import AuditLog
from .catalogue import TemplateCatalogue
from .notifier import Notifier
from .parameters import validate_parameters

__all__ = ["RequestService"]

_LIMITS = {"title": 200, "description": 10_000, "category": 100}


def _text(value: Any, field: str, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise BadInputError(f"{field} must be text", details={"field": field})
    clean = value.strip()
    if (required and not clean) or len(clean) > _LIMITS[field]:
        raise BadInputError(
            f"{field} must be 1-{_LIMITS[field]} characters", details={"field": field}
        )
    return clean


class RequestService:
    """The account side of the work: requests, templates, executions and deliverables.

    It is also the orchestrator's `ExecutionSink`: when an execution ends it charges the cost,
    records the deliverables, moves the request on and notifies the client's users.
    """

    def __init__(
        self,
        store: SQLiteStore,
        blobs: BlobStore,
        audit: AuditLog,
        clock: Clock,
        ids: IdFactory,
        catalogue: TemplateCatalogue,
        notifier: Notifier,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.audit = audit
        self.clock = clock
        self.ids = ids
        self.catalogue = catalogue
        self.notifier = notifier
        self.orchestrator: Orchestrator | None = None

    def _orchestrator(self) -> Orchestrator:
        if self.orchestrator is None:
            raise ConflictError("no orchestrator is attached to this factory")
        return self.orchestrator

    def _own_request(self, principal: Principal, request_id: str) -> Request:
        request = self.store.get_request(request_id)
        if not principal.role.is_staff and request.client_id != principal.client_id:
            # Another client's request looks exactly like a missing one.
            raise NotFoundError(f"no request {request_id!r}", details={"id": request_id})
        return request

    # -- requests ------------------------------------------------------------------------

    def create_request(
        self,
        principal: Principal,
        title: str,
        description: str = "",
        urgency: Urgency | str = Urgency.NORMAL,
        category: str = "general",
        client_id: str | None = None,
    ) -> Request:
        """Submit a request. Staff submit on behalf of a client and must name it.

        Raises `BadInputError`, `NotFoundError` (client), `QuotaExceededError` (the tier's
        monthly request limit).
        """
        owner = principal.client_id if not principal.role.is_staff else client_id
        if owner is None:
            raise BadInputError("staff must name the client_id", details={"field": "client_id"})
        try:
            level = Urgency(urgency)
        except ValueError:
            raise BadInputError(
                f"unknown urgency {urgency!r}",
                details={"field": "urgency", "choices": [u.value for u in Urgency]},
            ) from None
        now = self.clock.now()
        request = Request(
            self.ids.new("req"),
            owner,
            principal.user.id,
            _text(title, "title"),
            _text(description, "description", required=False),
            level,
            _text(category, "category"),
            RequestStatus.PENDING,
            now,
            now,
        )
        with self.store.transaction():
            client = self.store.get_client(owner)
            limit = client.limits.monthly_requests
            month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            if limit is not None and self.store.count_requests_since(owner, month_start) >= limit:
                raise QuotaExceededError(
                    f"the {client.tier.value} tier allows {limit} requests a month",
                    details={"monthly_requests": limit},
                )
            self.store.add_request(request)
            self.audit.record(
                principal.actor, "request.create", f"request:{request.id}", status="pending"
            )
        return request

    def get_request(self, principal: Principal, request_id: str) -> Request:
        """One request. Raises `NotFoundError` (also for another client's request)."""
        return self._own_request(principal, request_id)

    def list_requests(self, principal: Principal, client_id: str | None = None) -> list[Request]:
        """Requests, newest first; client users see only their own client's."""
        if not principal.role.is_staff:
            client_id = principal.client_id
        return self.store.list_requests(client_id)

    def list_templates(
        self, principal: Principal, tier: Tier | str | None = None
    ) -> list[Template]:
        """Templates allowed for `tier`; client users always get their own tier's."""
        if not principal.role.is_staff:
            assert principal.client_id is not None
            tier = self.store.get_client(principal.client_id).tier
        try:
            level = Tier(tier) if tier is not None else None
        except ValueError:
            raise BadInputError(f"unknown tier {tier!r}", details={"field": "tier"}) from None
        return self.catalogue.list(level)

    def get_template(self, principal: Principal, name: str) -> Template:
        """One template. Raises `NotFoundError`."""
        return self.catalogue.get(name)

    def assign_template(
        self,
        principal: Principal,
        request_id: str,
        template_name: str,
        parameters: dict[str, Any] | None = None,
    ) -> Request:
        """Assign a template and its parameters to a request that has not run yet.

        Raises `NotFoundError` (request, template), `PermissionDeniedError` (the template is not
        allowed for the client's tier), `ParameterError`, `ConflictError` (already executing).
        """
        request = self._own_request(principal, request_id)
        if request.status not in (RequestStatus.PENDING, RequestStatus.TEMPLATE_ASSIGNED):
            raise ConflictError(
                f"request {request_id} is {request.status.value}; it can no longer change",
                details={"status": request.status.value},
            )
        template = self.catalogue.get(template_name)
        client = self.store.get_client(request.client_id)
        if not template.allows(client.tier):
            raise BadInputError(
                f"template {template_name} is not available on the {client.tier.value} tier",
                details={"template": template_name, "tier": client.tier.value},
            )
        params = validate_parameters(template, client.tier, parameters or {})
        updated = attrs.evolve(
            request,
            template_name=template.name,
            parameters=params,
            status=RequestStatus.TEMPLATE_ASSIGNED,
            updated_at=self.clock.now(),
        )
        with self.store.transaction():
            self.store.update_request(updated, expect_status=request.status.value)
            self.audit.record(
                principal.actor,
                "request.assign_template",
                f"request:{request_id}",
                template=template.name,
                parameters=params,
                status=updated.status.value,
            )
        return updated

    def execute(self, principal: Principal, request_id: str) -> Execution:
        """Start executing a request's template in the background; returns the execution.

        Raises `ConflictError` (no template, or already executed), `QuotaExceededError` (the
        template's estimate exceeds the client's remaining budget), `WorkerError` (a worker
        of the template is not installed).
        """
        request = self._own_request(principal, request_id)
        if request.status is not RequestStatus.TEMPLATE_ASSIGNED or request.template_name is None:
            raise ConflictError(
                f"request {request_id} is {request.status.value}; assign a template first"
                if request.status is RequestStatus.PENDING
                else f"request {request_id} is {request.status.value}; it cannot execute again",
                details={"status": request.status.value},
            )
        template = self.catalogue.get(request.template_name)
        client = self.store.get_client(request.client_id)
        estimate = Decimal(template.estimated_cost_usd)
        if estimate > client.remaining_budget_usd:
            self.audit.record(
                principal.actor,
                "request.execute",
                f"request:{request_id}",
                "refused",
                reason="budget",
                estimate_usd=str(estimate),
            )
            raise QuotaExceededError(
                f"estimated cost {estimate} USD exceeds the remaining budget "
                f"{client.remaining_budget_usd} USD",
                details={
                    "estimate_usd": str(estimate),
                    "remaining_usd": str(client.remaining_budget_usd),
                },
            )
        orchestrator = self._orchestrator()
        context = {
            "request": {
                "title": request.title,
                "description": request.description,
                "category": request.category,
                "urgency": request.urgency.value,
            }
        }
        with self.store.transaction():
            execution = orchestrator.create(
                template,
                request.parameters,
                context=context,
                request_id=request.id,
                client_id=request.client_id,
            )
            updated = attrs.evolve(
                request,
                status=RequestStatus.EXECUTING,
                execution_id=execution.id,
                updated_at=self.clock.now(),
            )
            self.store.update_request(updated, expect_status=RequestStatus.TEMPLATE_ASSIGNED.value)
            self.audit.record(
                principal.actor,
                "request.execute",
                f"request:{request_id}",
                execution_id=execution.id,
                status=updated.status.value,
            )
        orchestrator.launch(execution.id)
        return execution

    # -- executions -----------------------------------------------------------------------

    def _own_execution(self, principal: Principal, execution_id: str) -> Execution:
        execution = self.store.get_execution(execution_id)
        if not principal.role.is_staff and execution.client_id != principal.client_id:
            raise NotFoundError(f"no execution {execution_id!r}", details={"id": execution_id})
        return execution

    def get_execution(self, principal: Principal, execution_id: str) -> Execution:
        """One execution. Raises `NotFoundError`."""
        return self._own_execution(principal, execution_id)

    def list_stage_runs(self, principal: Principal, execution_id: str) -> list[StageRun]:
        """The stage runs of an execution, in template order."""
        execution = self._own_execution(principal, execution_id)
        runs = {r.stage_id: r for r in self.store.get_stage_runs(execution_id)}
        return [runs[s.id] for s in execution.template.stages if s.id in runs]

    def list_events(
        self, principal: Principal, execution_id: str, after: int = 0, limit: int = 1000
    ) -> list[ExecutionEvent]:
        """Events of an execution after sequence number `after`."""
        self._own_execution(principal, execution_id)
        return self.store.list_events(execution_id, after, max(1, min(limit, 1000)))

    # -- deliverables, notifications, audit ----------------------------------------------------

    def list_deliverables(self, principal: Principal, request_id: str) -> list[Deliverable]:
        """Deliverables of a request."""
        self._own_request(principal, request_id)
        return self.store.list_deliverables(request_id)

    def get_deliverable(self, principal: Principal, deliverable_id: str) -> Deliverable:
        """One deliverable. Raises `NotFoundError` (also for another client's)."""
        deliverable = self.store.get_deliverable(deliverable_id)
        if not principal.role.is_staff and deliverable.client_id != principal.client_id:
            raise NotFoundError(
                f"no deliverable {deliverable_id!r}", details={"id": deliverable_id}
            )
        return deliverable

    def download(self, principal: Principal, deliverable_id: str) -> bytes:
        """A deliverable's bytes, verified against its sha256. Raises `IntegrityError`."""
        deliverable = self.get_deliverable(principal, deliverable_id)
        data = self.blobs.get(deliverable.ref)
        self.audit.record(
            principal.actor,
            "deliverable.download",
            f"deliverable:{deliverable_id}",
            size=len(data),
        )
        return data

    def list_notifications(
        self, principal: Principal, unread_only: bool = False
    ) -> list[Notification]:
        """The caller's own notifications, newest first."""
        return self.store.list_notifications(principal.user.id, unread_only)

    def mark_notification_read(self, principal: Principal, notification_id: str) -> None:
        """Mark one of the caller's notifications read. Raises `NotFoundError`."""
        if not self.store.mark_notification_read(
            notification_id, principal.user.id, self.clock.now()
        ):
            raise NotFoundError(f"no notification {notification_id!r}")

    def list_audit(
        self, principal: Principal, action: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """The audit log, newest first."""
        return self.store.list_audit(action=action, limit=max(1, min(limit, 1000)))

    # -- settlement (the orchestrator's sink) ----------------------------------------------------

    async def execution_finished(self, report: ExecutionReport) -> None:
        """Charge the cost, record deliverables, move the request on, notify. Idempotent."""
        execution = report.execution
        if execution.request_id is None or execution.client_id is None:
            return
        request = self.store.get_request(execution.request_id)
        if request.status is not RequestStatus.EXECUTING or request.execution_id != execution.id:
            return  # settled already (a repeated report) or superseded
        completed = execution.status is ExecutionStatus.COMPLETED
        status = RequestStatus.COMPLETED if completed else RequestStatus.FAILED
        now = self.clock.now()
        deliverables = [
            Deliverable(
                self.ids.new("dlv"),
                request.id,
                request.client_id,
                execution.id,
                artifact.type,
                artifact.name,
                artifact.media_type,
                artifact.ref,
                now,
                {"stage_id": artifact.stage_id} | artifact.metadata,
            )
            for artifact in report.artifacts
        ]
        with self.store.transaction():
            self.store.charge(request.client_id, execution.id, execution.cost.total_usd, now)
            for deliverable in deliverables:
                self.store.add_deliverable(deliverable)
            self.store.update_request(
                attrs.evolve(request, status=status, updated_at=now),
                expect_status=RequestStatus.EXECUTING.value,
            )
            self.audit.record(
                "system",
                "request.settle",
                f"request:{request.id}",
                execution_id=execution.id,
                status=status.value,
                cost_usd=str(execution.cost.total_usd),
                deliverables=[d.id for d in deliverables],
            )
        message = (
            f"Your request “{request.title}” is complete: {len(deliverables)} deliverable(s) ready."
            if completed
            else f"Your request “{request.title}” failed: {execution.error}"
        )
        data = {"request_id": request.id, "execution_id": execution.id, "status": status.value}
        for user in self.store.list_users(request.client_id):
            if user.active:
                await self.notifier.notify(user, f"request.{status.value}", message, data)
