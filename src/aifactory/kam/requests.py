"""Requests from submission to execution: templates, parameters, admission, deliverables."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from .._clock import Clock, IdFactory
from .._exceptions import BadInputError, ConflictError, NotFoundError, QuotaExceededError
from ..llm.metering import Meter, metering
from ..models import (
    Deliverable,
    Execution,
    ModelUsage,
    Principal,
    Request,
    RequestStatus,
    Template,
    Tier,
    Urgency,
)
from ..orchestrator import ExecutionControl, LocalControl, Orchestrator
from ..state import Store
from ..storage import BlobStore
from .audit import AuditLog
from .parameters import validate_parameters
from .recommend import Recommendation, Recommender
from .templates import TemplateService

__all__ = ["RequestService", "check_resources"]

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


def check_resources(resources: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate an execution's `resources`: `max_workers` (1-32), `timeout_ms`
    (1 s to 24 h) and `cache` (bool). Raises `BadInputError`."""
    given = dict(resources or {})
    unknown = sorted(set(given) - {"max_workers", "timeout_ms", "cache"})
    if unknown:
        raise BadInputError(f"unknown resources {unknown}", details={"field": "resources"})
    for name, low, high in (("max_workers", 1, 32), ("timeout_ms", 1000, 86_400_000)):
        value = given.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
        ):
            raise BadInputError(
                f"resources.{name} must be an integer from {low} to {high}",
                details={"field": f"resources.{name}"},
            )
    if "cache" in given and not isinstance(given["cache"], bool):
        raise BadInputError("resources.cache must be true or false", details={"field": "cache"})
    return given


class RequestService:
    """The account side of the work: requests, templates, admission and deliverables."""

    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        audit: AuditLog,
        clock: Clock,
        ids: IdFactory,
        templates: TemplateService,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.audit = audit
        self.clock = clock
        self.ids = ids
        self.templates = templates
        self.orchestrator: Orchestrator | None = None
        self.remote_control: ExecutionControl | None = None
        self.recommender = Recommender(templates)

    def control(self) -> ExecutionControl:
        """Who starts and stops executions: a remote orchestrator service if one is set,
        else the orchestrator in this process."""
        if self.remote_control is not None:
            return self.remote_control
        return LocalControl(self._orchestrator())

    def _orchestrator(self) -> Orchestrator:
        if self.orchestrator is None:
            raise ConflictError("no orchestrator is attached to this factory")
        return self.orchestrator

    async def _own_request(self, principal: Principal, request_id: str) -> Request:
        request = await self.store.get_request(request_id)
        if not principal.role.is_staff and request.client_id != principal.client_id:
            # Another client's request looks exactly like a missing one.
            raise NotFoundError(f"no request {request_id!r}", details={"id": request_id})
        return request

    # -- requests ------------------------------------------------------------------------

    async def create_request(
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
        async with self.store.transaction() as tx:
            client = await tx.get_client(owner)
            limit = client.limits.monthly_requests
            month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            if limit is not None and await tx.count_requests_since(owner, month_start) >= limit:
                raise QuotaExceededError(
                    f"the {client.tier.value} tier allows {limit} requests a month",
                    details={"monthly_requests": limit},
                )
            await tx.add_request(request)
            await self.audit.within(tx).record(
                principal.actor, "request.create", f"request:{request.id}", status="pending"
            )
        return request

    async def get_request(self, principal: Principal, request_id: str) -> Request:
        """One request. Raises `NotFoundError` (also for another client's request)."""
        return await self._own_request(principal, request_id)

    async def list_requests(
        self, principal: Principal, client_id: str | None = None
    ) -> list[Request]:
        """Requests, newest first; client users see only their own client's."""
        if not principal.role.is_staff:
            client_id = principal.client_id
        return await self.store.list_requests(client_id)

    async def list_templates(
        self, principal: Principal, tier: Tier | str | None = None
    ) -> list[Template]:
        """Templates allowed for `tier`; client users always get their own tier's."""
        if not principal.role.is_staff:
            assert principal.client_id is not None
            tier = (await self.store.get_client(principal.client_id)).tier
        try:
            level = Tier(tier) if tier is not None else None
        except ValueError:
            raise BadInputError(f"unknown tier {tier!r}", details={"field": "tier"}) from None
        return await self.templates.list(level)

    async def get_template(
        self, principal: Principal, name: str, version: int | None = None
    ) -> Template:
        """A template in use: its latest version, or `version` of it. Raises
        `NotFoundError` (unknown or retired template, unknown version)."""
        return await self.templates.get(name, version)

    async def recommend(
        self,
        principal: Principal,
        request_id: str,
        limit: int = 3,
        use_llm: bool | None = None,
    ) -> list[Recommendation]:
        """Templates that fit a request, best first, among those the client's tier allows and
        its remaining budget covers. `use_llm=None` uses the model when one is configured.

        Raises `NotFoundError`, and `StageFailedError` when the model's answer is unusable.
        """
        request = await self._own_request(principal, request_id)
        client = await self.store.get_client(request.client_id)
        used = client.used_in(self.clock.now().strftime("%Y-%m"))
        available = client.monthly_budget_usd - used - await self.store.reserved_usd(client.id)
        with metering() as meter:
            try:
                found = await self.recommender.recommend(
                    request, client, available, limit=max(1, min(int(limit), 10)), use_llm=use_llm
                )
            finally:
                # The model was billed whether or not its answer was of use.
                spent = await self._charge_model_calls(request, meter)
        await self.audit.record(
            principal.actor,
            "templates.recommend",
            f"request:{request_id}",
            recommended=[r.template for r in found],
            method=found[0].method if found else None,
            **spent,
        )
        return found

    async def _charge_model_calls(self, request: Request, meter: Meter) -> dict[str, Any]:
        """Charge the client for the model calls `meter` counted for `request` (outside any
        execution); returns what was charged, for the audit log."""
        if not meter.calls:
            return {}
        cost, now = meter.cost_usd, self.clock.now()
        # Each charge has its own key: charges are idempotent by key.
        key = f"{request.id}/{self.ids.new('mcall')}"
        calls = [
            ModelUsage(
                self.ids.new("mcall"),
                request.client_id,
                request.id,
                "recommendation",
                call.model,
                call.outcome,
                call.requests,
                call.usage.prompt_tokens,
                call.usage.completion_tokens,
                call.cost_usd,
                now,
            )
            for call in meter.calls
        ]
        async with self.store.transaction() as tx:
            await tx.charge(request.client_id, key, cost, now)
            await tx.add_model_usage(calls)
        return {
            "model_calls": meter.requests,
            "prompt_tokens": meter.usage.prompt_tokens,
            "completion_tokens": meter.usage.completion_tokens,
            "cost_usd": str(cost),
        }

    async def assign_template(
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
        request = await self._own_request(principal, request_id)
        if request.status not in (RequestStatus.PENDING, RequestStatus.TEMPLATE_ASSIGNED):
            raise ConflictError(
                f"request {request_id} is {request.status.value}; it can no longer change",
                details={"status": request.status.value},
            )
        template = await self.templates.get(template_name)
        client = await self.store.get_client(request.client_id)
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
        async with self.store.transaction() as tx:
            await tx.update_request(updated, expect_status=request.status.value)
            await self.audit.within(tx).record(
                principal.actor,
                "request.assign_template",
                f"request:{request_id}",
                template=template.name,
                parameters=params,
                status=updated.status.value,
            )
        return updated

    async def admit(self, store: Store, execution: Execution, estimate: Decimal) -> None:
        """Hold `estimate` of the execution's client's budget, in `store` (the transaction
        that records the execution, so that a refused one is never recorded).

        Raises `QuotaExceededError` when the estimate exceeds what is left of the monthly
        budget after usage and every other execution's hold, or when the tier's concurrent
        executions are all taken; the refusal is audited (outside the transaction).
        """
        assert execution.client_id is not None
        client = await store.get_client(execution.client_id)
        await store.admit(
            client.id,
            execution.id,
            estimate,
            self.clock.now(),
            client.limits.concurrent_executions,
        )

    async def refused(
        self, principal: Principal, client_id: str, what: str, exc: Exception
    ) -> None:
        """Audit an admission `admit` refused."""
        details = {k: str(v) for k, v in getattr(exc, "details", {}).items()}
        await self.audit.record(principal.actor, what, f"client:{client_id}", "refused", **details)

    async def execute(
        self, principal: Principal, request_id: str, resources: Mapping[str, Any] | None = None
    ) -> Execution:
        """Start executing a request's template in the background; returns the execution.

        `resources` may set `max_workers`, `timeout_ms` and `cache` (use the result cache).
        Raises `ConflictError` (no template, or already executed), `QuotaExceededError` (the
        template's estimate exceeds the client's remaining budget, or the tier's concurrent
        executions are taken), `WorkerError` (a worker of the template is not installed).
        """
        limits = check_resources(resources)
        request = await self._own_request(principal, request_id)
        if request.status is not RequestStatus.TEMPLATE_ASSIGNED or request.template_name is None:
            raise ConflictError(
                f"request {request_id} is {request.status.value}; assign a template first"
                if request.status is RequestStatus.PENDING
                else f"request {request_id} is {request.status.value}; it cannot execute again",
                details={"status": request.status.value},
            )
        template = await self.templates.get(request.template_name)
        orchestrator = self._orchestrator()
        context = {
            "request": {
                "title": request.title,
                "description": request.description,
                "category": request.category,
                "urgency": request.urgency.value,
            }
        }
        try:
            async with self.store.transaction() as tx:
                execution = await orchestrator.create(
                    template,
                    request.parameters,
                    context=context,
                    resources=limits,
                    request_id=request.id,
                    client_id=request.client_id,
                    store=tx,
                    runnable=True,  # should the launch below be lost, a replica takes it up
                )
                # Admission and the execution's record are one transaction: of concurrent
                # executes, none is admitted on budget another one holds.
                estimate = Decimal(template.estimated_cost_usd)
                await self.admit(tx, execution, estimate)
                updated = attrs.evolve(
                    request,
                    status=RequestStatus.EXECUTING,
                    execution_id=execution.id,
                    updated_at=self.clock.now(),
                )
                await tx.update_request(
                    updated, expect_status=RequestStatus.TEMPLATE_ASSIGNED.value
                )
                await self.audit.within(tx).record(
                    principal.actor,
                    "request.execute",
                    f"request:{request_id}",
                    execution_id=execution.id,
                    status=updated.status.value,
                    held_usd=str(estimate),
                )
        except QuotaExceededError as exc:
            await self.refused(principal, request.client_id, "request.execute", exc)
            raise
        await self.control().launch(execution.id)
        return execution

    # -- deliverables, notifications, audit ----------------------------------------------------

    async def list_deliverables(self, principal: Principal, request_id: str) -> list[Deliverable]:
        """Deliverables of a request."""
        await self._own_request(principal, request_id)
        return await self.store.list_deliverables(request_id)

    async def get_deliverable(self, principal: Principal, deliverable_id: str) -> Deliverable:
        """One deliverable. Raises `NotFoundError` (also for another client's)."""
        deliverable = await self.store.get_deliverable(deliverable_id)
        if not principal.role.is_staff and deliverable.client_id != principal.client_id:
            raise NotFoundError(
                f"no deliverable {deliverable_id!r}", details={"id": deliverable_id}
            )
        return deliverable

    async def download(self, principal: Principal, deliverable_id: str) -> bytes:
        """A deliverable's bytes, verified against its sha256. Raises `IntegrityError`."""
        deliverable = await self.get_deliverable(principal, deliverable_id)
        data = await self.blobs.aget(deliverable.ref)
        await self.audit.record(
            principal.actor,
            "deliverable.download",
            f"deliverable:{deliverable_id}",
            size=len(data),
        )
        return data
