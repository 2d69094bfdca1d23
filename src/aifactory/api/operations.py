"""The table of operations: every call a client can make, declared once.

Each `Operation` names the call, its HTTP method and path (following the documented AI
Factory wire format; `{name}` segments are arguments), who may call it, and the type of its
reply. The in-process transport checks the table before dispatching; the HTTP server builds
its routes (and the OpenAPI document) from it; the HTTP client finds paths and reply types in
it. Arguments other than path segments travel in the query string (GET) or the JSON body;
their types are those of the service method that carries the operation out.

Permission is deny-by-default: a role not listed is refused, and so is an unknown operation.
Ownership (a client user sees only its own client's objects) is checked by the service that
owns the objects, since only it can see whose they are; so is whom staff may administer (an
account manager manages client users and itself, never an admin or another account manager:
`Principal.manages`).
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from .._exceptions import PermissionDeniedError
from ..models import (
    ApiKeyInfo,
    AuditEvent,
    Client,
    Deliverable,
    Execution,
    ExecutionEvent,
    ExecutionOwner,
    MetricsReport,
    Notification,
    PasswordReset,
    Recommendation,
    Request,
    Role,
    StageRun,
    Template,
    TemplateVersion,
    UsageReport,
    User,
    WebhookDelivery,
    WorkerStatus,
)

__all__ = ["OPERATIONS", "ApiKeyInfo", "Operation", "authorize", "operation"]

_STAFF = frozenset({Role.ADMIN, Role.ACCOUNT_MANAGER})
_ADMIN = frozenset({Role.ADMIN})
_ANY = frozenset(Role)
_PUBLIC: frozenset[Role] = frozenset()
_SEGMENT = re.compile(r"{(\w+)}")


@attrs.frozen
class Operation:
    """One operation: name, HTTP method and path, who may call it, its reply type, and its
    handler.

    `handler` names the service method that carries it out, as `service.method` on the
    factory (`accounts.create_client`); its parameters after the principal are the
    operation's arguments, checked alike by both transports (`arguments.bind`), and its
    return type is `reply`. `public` operations need no credentials (login). `kind` says
    what the reply is: `"json"` (the codec's form of `reply`) or `"bytes"` (a download, of
    `media_type`).
    """

    name: str
    method: str
    path: str
    roles: frozenset[Role]
    reply: Any
    handler: str
    summary: str = ""
    public: bool = False
    kind: str = "json"
    media_type: str = "application/octet-stream"

    @property
    def path_params(self) -> tuple[str, ...]:
        """The argument names that are path segments."""
        return tuple(_SEGMENT.findall(self.path))

    def allows(self, role: Role) -> bool:
        """Whether `role` may call this operation."""
        return self.public or role in self.roles


def _op(
    name: str,
    method: str,
    path: str,
    roles: frozenset[Role],
    reply: Any,
    summary: str,
    kind: str = "json",
    *,
    handler: str,
    media_type: str = "application/octet-stream",
) -> Operation:
    return Operation(
        name, method, path, roles, reply, handler, summary, roles is _PUBLIC, kind, media_type
    )


_R = "/api/kam/requests"
_U = "/api/kam/users"
_X = "/api/pipelines/executions"

OPERATIONS: tuple[Operation, ...] = (
    _op(
        "auth.login",
        "POST",
        "/api/auth/login",
        _PUBLIC,
        dict[str, Any],
        "Log in",
        handler="accounts.login",
    ),
    _op(
        "auth.logout",
        "POST",
        "/api/auth/logout",
        _ANY,
        None,
        "Revoke this session",
        handler="accounts.logout",
    ),
    _op(
        "auth.me",
        "GET",
        "/api/auth/me",
        _ANY,
        dict[str, Any],
        "The caller and its context",
        handler="accounts.me",
    ),
    _op(
        "auth.change_password",
        "POST",
        "/api/auth/change-password",
        _ANY,
        None,
        "Change your own password; your other sessions end",
        handler="administration.change_password",
    ),
    _op(
        "clients.create",
        "POST",
        "/api/kam/clients",
        _STAFF,
        Client,
        "Create a client",
        handler="accounts.create_client",
    ),
    _op(
        "clients.list",
        "GET",
        "/api/kam/clients",
        _STAFF,
        list[Client],
        "List clients",
        handler="accounts.list_clients",
    ),
    _op(
        "clients.get",
        "GET",
        "/api/kam/clients/{client_id}",
        _ANY,
        Client,
        "One client",
        handler="accounts.get_client",
    ),
    _op(
        "clients.update",
        "PATCH",
        "/api/kam/clients/{client_id}",
        _STAFF,
        Client,
        "Change a client's name, tier, monthly budget or whether it is active",
        handler="administration.update_client",
    ),
    _op(
        "clients.usage",
        "GET",
        "/api/kam/clients/{client_id}/usage",
        _ANY,
        UsageReport,
        "A client's usage in a month: executions, model calls, tokens, costs",
        handler="usage.report",
    ),
    _op(
        "clients.usage_csv",
        "GET",
        "/api/kam/clients/{client_id}/usage.csv",
        _ANY,
        bytes,
        "A client's usage in a month, as CSV",
        kind="bytes",
        handler="usage.report_csv",
        media_type="text/csv; charset=utf-8",
    ),
    _op(
        "users.create",
        "POST",
        _U,
        _STAFF,
        User,
        "Create a user",
        handler="accounts.create_user",
    ),
    _op(
        "users.list",
        "GET",
        _U,
        _STAFF,
        list[User],
        "List users",
        handler="accounts.list_users",
    ),
    _op(
        "users.get",
        "GET",
        _U + "/{user_id}",
        _STAFF,
        User,
        "One user",
        handler="administration.get_user",
    ),
    _op(
        "users.update",
        "PATCH",
        _U + "/{user_id}",
        _STAFF,
        User,
        "Change a user's email or display name",
        handler="administration.update_user",
    ),
    _op(
        "users.deactivate",
        "POST",
        _U + "/{user_id}/deactivate",
        _STAFF,
        User,
        "Deactivate a user: no login, its sessions and API keys refused at once",
        handler="administration.deactivate_user",
    ),
    _op(
        "users.reactivate",
        "POST",
        _U + "/{user_id}/reactivate",
        _STAFF,
        User,
        "Let a deactivated user log in again",
        handler="administration.reactivate_user",
    ),
    _op(
        "users.reset_password",
        "POST",
        _U + "/{user_id}/reset-password",
        _STAFF,
        PasswordReset,
        "Give a user a generated password (in this reply only) and end its sessions",
        handler="administration.reset_password",
    ),
    _op(
        "users.revoke_sessions",
        "POST",
        _U + "/{user_id}/revoke-sessions",
        _STAFF,
        int,
        "End every session of a user; how many",
        handler="administration.revoke_sessions",
    ),
    _op(
        "api_keys.create",
        "POST",
        "/api/kam/api-keys",
        _ANY,
        ApiKeyInfo,
        "Create an API key",
        handler="accounts.create_api_key",
    ),
    _op(
        "api_keys.list",
        "GET",
        "/api/kam/api-keys",
        _ANY,
        list[ApiKeyInfo],
        "List API keys",
        handler="accounts.list_api_keys",
    ),
    _op(
        "api_keys.revoke",
        "POST",
        "/api/kam/api-keys/{key_id}/revoke",
        _ANY,
        ApiKeyInfo,
        "Revoke an API key",
        handler="accounts.revoke_api_key",
    ),
    _op(
        "requests.create",
        "POST",
        _R,
        _ANY,
        Request,
        "Submit a request",
        handler="requests.create_request",
    ),
    _op(
        "requests.list",
        "GET",
        _R,
        _ANY,
        list[Request],
        "List requests (clients: their own)",
        handler="requests.list_requests",
    ),
    _op(
        "requests.get",
        "GET",
        _R + "/{request_id}",
        _ANY,
        Request,
        "One request",
        handler="requests.get_request",
    ),
    _op(
        "requests.assign_template",
        "PUT",
        _R + "/{request_id}",
        _STAFF,
        Request,
        "Assign a template and its parameters",
        handler="requests.assign_template",
    ),
    _op(
        "requests.execute",
        "POST",
        _R + "/{request_id}/execute",
        _STAFF,
        Execution,
        "Execute",
        handler="requests.execute",
    ),
    _op(
        "templates.list",
        "GET",
        "/api/kam/templates",
        _ANY,
        list[Template],
        "Templates",
        handler="requests.list_templates",
    ),
    _op(
        "templates.get",
        "GET",
        "/api/kam/templates/{name}",
        _ANY,
        Template,
        "One template",
        handler="requests.get_template",
    ),
    _op(
        "templates.versions",
        "GET",
        "/api/kam/templates/{name}/versions",
        _STAFF,
        list[TemplateVersion],
        "Every saved version of a template",
        handler="templates.list_versions",
    ),
    _op(
        "templates.create",
        "POST",
        "/api/kam/templates",
        _STAFF,
        TemplateVersion,
        "Save a new template, checked first",
        handler="templates.create",
    ),
    _op(
        "templates.update",
        "PUT",
        "/api/kam/templates/{name}",
        _STAFF,
        TemplateVersion,
        "Save a new version of a template",
        handler="templates.update",
    ),
    _op(
        "templates.retire",
        "POST",
        "/api/kam/templates/{name}/retire",
        _STAFF,
        TemplateVersion,
        "Retire a template: offered and assigned no more",
        handler="templates.retire",
    ),
    _op(
        "templates.recommend",
        "POST",
        "/api/kam/recommend-template",
        _STAFF,
        list[Recommendation],
        "Templates that fit a request, ranked, with confidence and reasons",
        handler="requests.recommend",
    ),
    _op(
        "executions.get",
        "GET",
        _X + "/{execution_id}",
        _ANY,
        Execution,
        "Execution status",
        handler="executions.get",
    ),
    _op(
        "executions.stages",
        "GET",
        _X + "/{execution_id}/stages",
        _ANY,
        list[StageRun],
        "Stage runs of an execution",
        handler="executions.stages",
    ),
    _op(
        "executions.events",
        "GET",
        _X + "/{execution_id}/events",
        _ANY,
        list[ExecutionEvent],
        "Events of an execution after a sequence number",
        handler="executions.events",
    ),
    _op(
        "executions.metrics",
        "GET",
        _X + "/{execution_id}/metrics",
        _ANY,
        dict[str, Any],
        "Durations, attempts, tokens, cost and bytes, per stage and in total",
        handler="executions.metrics",
    ),
    _op(
        "executions.cancel",
        "POST",
        _X + "/{execution_id}/cancel",
        _ANY,
        Execution,
        "Cancel an execution (clients: their own)",
        handler="executions.cancel",
    ),
    _op(
        "executions.retry",
        "POST",
        _X + "/{execution_id}/retry",
        _STAFF,
        Execution,
        "Run a failed or cancelled execution again, reusing committed stages",
        handler="executions.retry",
    ),
    _op(
        "executions.resume",
        "POST",
        _X + "/{execution_id}/resume",
        _STAFF,
        Execution,
        "Resume an interrupted execution from its last checkpoint",
        handler="executions.resume",
    ),
    _op(
        "executions.owners",
        "GET",
        "/api/pipelines/leases",
        _STAFF,
        list[ExecutionOwner],
        "Which replica runs what: executions running, interrupted or waiting for an owner",
        handler="executions.owners",
    ),
    _op(
        "executions.workers",
        "GET",
        "/api/pipelines/workers",
        _STAFF,
        list[WorkerStatus],
        "The worker endpoints as the registry sees them: ready, busy, unhealthy, unreachable",
        handler="executions.workers",
    ),
    _op(
        "metrics.summary",
        "GET",
        "/api/admin/metrics",
        _STAFF,
        MetricsReport,
        "Factory-wide metrics of a time window, by client, template, worker or stage kind",
        handler="metrics.summary",
    ),
    _op(
        "executions.prune",
        "POST",
        "/api/pipelines/prune",
        _ADMIN,
        dict[str, int],
        "Forget checkpoints, events and (if completed) stage data of long-finished executions",
        handler="executions.prune",
    ),
    _op(
        "deliverables.list",
        "GET",
        _R + "/{request_id}/deliverables",
        _ANY,
        list[Deliverable],
        "Deliverables of a request",
        handler="requests.list_deliverables",
    ),
    _op(
        "deliverables.get",
        "GET",
        "/api/kam/deliverables/{deliverable_id}",
        _ANY,
        Deliverable,
        "One deliverable",
        handler="requests.get_deliverable",
    ),
    _op(
        "deliverables.download",
        "GET",
        "/api/kam/deliverables/{deliverable_id}/content",
        _ANY,
        bytes,
        "A deliverable's bytes",
        kind="bytes",
        handler="requests.download",
    ),
    _op(
        "notifications.list",
        "GET",
        "/api/kam/notifications",
        _ANY,
        list[Notification],
        "Your notifications",
        handler="notifications.list",
    ),
    _op(
        "notifications.mark_read",
        "POST",
        "/api/kam/notifications/{notification_id}/read",
        _ANY,
        None,
        "Mark a notification read",
        handler="notifications.mark_read",
    ),
    _op(
        "audit.list",
        "GET",
        "/api/kam/audit",
        _ADMIN,
        list[AuditEvent],
        "The audit log",
        handler="audit.list",
    ),
    _op(
        "webhooks.deliveries",
        "GET",
        "/api/kam/webhooks/deliveries",
        _STAFF,
        list[WebhookDelivery],
        "Webhook delivery attempts, newest first",
        handler="webhooks.deliveries",
    ),
)

_BY_NAME = {op.name: op for op in OPERATIONS}


def operation(name: str) -> Operation:
    """The operation called `name`. Raises `PermissionDeniedError` for an unknown name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise PermissionDeniedError(f"no such operation: {name}") from None


def authorize(name: str, role: Role) -> Operation:
    """The operation `name` if `role` may call it; otherwise raises `PermissionDeniedError`."""
    op = operation(name)
    if not op.allows(role):
        raise PermissionDeniedError(
            f"role {role.value!r} may not call {name}", details={"operation": name}
        )
    return op
