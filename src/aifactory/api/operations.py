"""The table of operations: every call a client can make, declared once.

Each `Operation` names the call, its HTTP method and path (following the documented AI Factory
wire format), and the roles that may call it. Permission is deny-by-default: a role not listed
is refused, and an unknown operation is refused. The in-process transport checks this table
before dispatching; the HTTP server builds its routes from it.

Ownership (a client user sees only its own client's objects) is checked by the service that
owns the objects, since only it can see whose they are.
"""

from __future__ import annotations

import attrs

from .._exceptions import PermissionDeniedError
from ..models.enums import Role

__all__ = ["OPERATIONS", "Operation", "authorize", "operation"]

_STAFF = frozenset({Role.ADMIN, Role.ACCOUNT_MANAGER})
_ADMIN = frozenset({Role.ADMIN})
_ANY = frozenset(Role)
_PUBLIC: frozenset[Role] = frozenset()


@attrs.frozen
class Operation:
    """One operation: name, HTTP method and path, and who may call it.

    `public` operations need no session (login); all others need one whose role is in `roles`.
    """

    name: str
    method: str
    path: str
    roles: frozenset[Role]
    public: bool = False
    summary: str = ""

    def allows(self, role: Role) -> bool:
        """Whether `role` may call this operation."""
        return self.public or role in self.roles


def _op(name: str, method: str, path: str, roles: frozenset[Role], summary: str) -> Operation:
    return Operation(name, method, path, roles, public=roles is _PUBLIC, summary=summary)


OPERATIONS: tuple[Operation, ...] = (
    _op("auth.login", "POST", "/api/auth/login", _PUBLIC, "Log in; returns a session token"),
    _op("auth.logout", "POST", "/api/auth/logout", _ANY, "Revoke the current session"),
    _op("auth.me", "GET", "/api/auth/me", _ANY, "The current user and its context"),
    _op("clients.create", "POST", "/api/kam/clients", _STAFF, "Create a client organisation"),
    _op("clients.list", "GET", "/api/kam/clients", _STAFF, "List client organisations"),
    _op("clients.get", "GET", "/api/kam/clients/{id}", _ANY, "One client (clients: their own)"),
    _op("users.create", "POST", "/api/kam/users", _STAFF, "Create a user"),
    _op("users.list", "GET", "/api/kam/users", _STAFF, "List users"),
    _op("requests.create", "POST", "/api/kam/requests", _ANY, "Submit a request"),
    _op("requests.list", "GET", "/api/kam/requests", _ANY, "List requests (clients: their own)"),
    _op("requests.get", "GET", "/api/kam/requests/{id}", _ANY, "One request"),
    _op(
        "requests.assign_template",
        "PUT",
        "/api/kam/requests/{id}",
        _STAFF,
        "Assign a template and its parameters",
    ),
    _op("requests.execute", "POST", "/api/kam/requests/{id}/execute", _STAFF, "Execute"),
    _op("templates.list", "GET", "/api/kam/templates", _ANY, "Templates allowed for a tier"),
    _op("templates.get", "GET", "/api/kam/templates/{name}", _ANY, "One template"),
    _op("executions.get", "GET", "/api/pipelines/executions/{id}", _ANY, "Execution status"),
    _op(
        "executions.stages",
        "GET",
        "/api/pipelines/executions/{id}/stages",
        _ANY,
        "Stage runs of an execution",
    ),
    _op(
        "executions.events",
        "GET",
        "/api/pipelines/executions/{id}/events",
        _ANY,
        "Events of an execution after a sequence number",
    ),
    _op(
        "executions.metrics",
        "GET",
        "/api/pipelines/executions/{id}/metrics",
        _ANY,
        "Durations, attempts, tokens, cost and bytes, per stage and in total",
    ),
    _op(
        "executions.cancel",
        "POST",
        "/api/pipelines/executions/{id}/cancel",
        _ANY,
        "Cancel an execution (clients: their own)",
    ),
    _op(
        "executions.retry",
        "POST",
        "/api/pipelines/executions/{id}/retry",
        _STAFF,
        "Run a failed or cancelled execution again, reusing committed stages",
    ),
    _op(
        "executions.prune",
        "POST",
        "/api/pipelines/executions/prune",
        _ADMIN,
        "Forget checkpoints and events of long-finished executions",
    ),
    _op(
        "executions.resume",
        "POST",
        "/api/pipelines/executions/{id}/resume",
        _STAFF,
        "Resume an interrupted execution from its last checkpoint",
    ),
    _op(
        "deliverables.list",
        "GET",
        "/api/kam/requests/{id}/deliverables",
        _ANY,
        "Deliverables of a request",
    ),
    _op("deliverables.get", "GET", "/api/kam/deliverables/{id}", _ANY, "One deliverable"),
    _op(
        "deliverables.download",
        "GET",
        "/api/kam/deliverables/{id}/content",
        _ANY,
        "A deliverable's bytes",
    ),
    _op("notifications.list", "GET", "/api/kam/notifications", _ANY, "Your notifications"),
    _op(
        "notifications.mark_read",
        "POST",
        "/api/kam/notifications/{id}/read",
        _ANY,
        "Mark a notification read",
    ),
    _op("audit.list", "GET", "/api/kam/audit", _ADMIN, "Read the audit log"),
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
