"""The one exception tree of aifactory.

Every error the library raises on purpose is an `AIFactoryError`. Errors of the libraries
underneath (sqlite3, fsspec, argon2, ...) are caught at the boundary and re-raised as one of
these, chained with `raise ... from`, so callers never need to know what is underneath.

```
AIFactoryError
├── AuthenticationError        401  who are you?
│   └── SessionExpiredError    401
├── PermissionDeniedError      403  you may not do that
├── NotFoundError              404  no such thing (or not yours to see)
├── BadInputError              400  the request itself is wrong
│   ├── ParameterError         400  template parameters fail their schema
│   ├── InputRejectedError     400  a worker refused a stage's input at handshake
│   ├── UnsafeKeyError         400  a storage key tries to escape its namespace
│   └── PayloadTooLargeError   413  a request body over the server's limit
├── ConflictError              409  the thing is in the wrong state for that
│   ├── StaleAttemptError      409  an acknowledge from an attempt that was replaced
│   └── LeaseLostError         409  another process has taken the execution over
├── QuotaExceededError         429  budget, tier limit or rate limit reached
├── WorkerError                502  a worker refused or failed a stage
│   ├── HandshakeRejectedError 502  no endpoint accepted (busy, unhealthy)
│   ├── StageFailedError       502
│   └── StageTimeoutError      504  schedule-to-start, start-to-close or heartbeat ran out
├── TransportError             503  could not reach the other side
│   ├── ConnectionFailedError  503  no connection could be made (nothing was sent)
│   └── TransportTimeoutError  504  connected, but no answer in time
└── StorageError               500  blobs or state could not be read or written
    ├── IntegrityError         500  stored bytes do not match their reference
    └── StoreBusyError         503  another process holds the database's lock; retry later
```

Each class carries a stable machine-readable `code` and the HTTP `status` it maps to, so the
remote transport can carry it as `{"error": {"code", "message", "details"}}` and raise the same
class on the other side (`error_from_body`). An error that came over HTTP carries the
server's `request_id` (its `x-request-id` header, which the server also logs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "ERROR_BY_STATUS",
    "AIFactoryError",
    "AuthenticationError",
    "BadInputError",
    "ConflictError",
    "ConnectionFailedError",
    "HandshakeRejectedError",
    "InputRejectedError",
    "IntegrityError",
    "LeaseLostError",
    "NotFoundError",
    "ParameterError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "SessionExpiredError",
    "StageFailedError",
    "StageTimeoutError",
    "StaleAttemptError",
    "StorageError",
    "StoreBusyError",
    "TransportError",
    "TransportTimeoutError",
    "UnsafeKeyError",
    "WorkerError",
    "error_class_for_code",
    "error_from_body",
]


class AIFactoryError(Exception):
    """Base of every error aifactory raises on purpose.

    `details` holds structured, non-secret facts about the failure (field names, limits,
    ids) for programs to act on; `message` is for people.
    """

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        #: The server's id of the HTTP request that failed (`x-request-id`), when the error
        #: came over HTTP: quote it to whoever runs the server.
        self.request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The error as the JSON body the HTTP transport sends."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class AuthenticationError(AIFactoryError):
    """Credentials are missing, wrong, revoked or expired."""

    code = "authentication_failed"
    status = 401


class SessionExpiredError(AuthenticationError):
    """The session token was valid once but its lifetime is over."""

    code = "session_expired"


class PermissionDeniedError(AIFactoryError):
    """The caller is known but its role may not perform the operation."""

    code = "permission_denied"
    status = 403


class NotFoundError(AIFactoryError):
    """No such object, or one the caller may not see (the two are indistinguishable on purpose)."""

    code = "not_found"
    status = 404


class BadInputError(AIFactoryError):
    """The request is malformed or a value is out of range."""

    code = "bad_input"
    status = 400


class ParameterError(BadInputError):
    """Template parameters do not satisfy the template's parameter schema."""

    code = "invalid_parameters"


class InputRejectedError(BadInputError):
    """A worker refused a stage's input at handshake; another attempt would be refused too."""

    code = "input_rejected"


class UnsafeKeyError(BadInputError):
    """A storage reference or key would escape its namespace (`..`, absolute, other protocol)."""

    code = "unsafe_storage_key"


class PayloadTooLargeError(BadInputError):
    """A request body is larger than the server accepts (data moves by reference, so wire
    messages are small)."""

    code = "payload_too_large"
    status = 413


class ConflictError(AIFactoryError):
    """The object is in a state that does not allow the operation (e.g. executing twice)."""

    code = "conflict"
    status = 409


class StaleAttemptError(ConflictError):
    """A message from a stage attempt that has since been replaced by a newer one."""

    code = "stale_attempt"


class LeaseLostError(ConflictError):
    """The execution's lease has passed to another process: this one may commit nothing more
    about it."""

    code = "lease_lost"


class QuotaExceededError(AIFactoryError):
    """A budget, tier limit or rate limit would be exceeded."""

    code = "quota_exceeded"
    status = 429


class WorkerError(AIFactoryError):
    """A worker could not do a stage."""

    code = "worker_error"
    status = 502


class HandshakeRejectedError(WorkerError):
    """The worker declined the stage at handshake (unsupported input, over capacity)."""

    code = "handshake_rejected"


class StageFailedError(WorkerError):
    """A stage failed while processing."""

    code = "stage_failed"


class StageTimeoutError(WorkerError):
    """A stage ran out of time: waiting for a worker, in one attempt, or between heartbeats.

    `details["timeout"]` says which: `schedule_to_start`, `start_to_close` or `heartbeat`.
    """

    code = "stage_timeout"
    status = 504


class TransportError(AIFactoryError):
    """The other side could not be reached or answered nonsense."""

    code = "transport_error"
    status = 503


class ConnectionFailedError(TransportError):
    """No connection could be made to the other side: nothing was sent."""

    code = "connection_failed"


class TransportTimeoutError(TransportError):
    """The other side was reached but did not answer in time (the request may have been
    carried out)."""

    code = "transport_timeout"
    status = 504


class StorageError(AIFactoryError):
    """Blobs or state could not be read or written."""

    code = "storage_error"
    status = 500


class IntegrityError(StorageError):
    """Stored bytes do not match the size or sha256 their reference promises."""

    code = "integrity_error"


class StoreBusyError(StorageError):
    """Another process holds the state database's write lock for too long; retry later."""

    code = "store_busy"
    status = 503


def _all_subclasses(cls: type[AIFactoryError]) -> list[type[AIFactoryError]]:
    found: list[type[AIFactoryError]] = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


def error_class_for_code(code: str) -> type[AIFactoryError]:
    """The exception class whose `code` is `code`; `AIFactoryError` for unknown codes."""
    for cls in _all_subclasses(AIFactoryError):
        if cls.code == code:
            return cls
    return AIFactoryError


#: The class an error answer's status stands for, when its body does not say.
ERROR_BY_STATUS: dict[int, type[AIFactoryError]] = {
    400: BadInputError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    429: QuotaExceededError,
    502: WorkerError,
    503: TransportError,
    504: TransportTimeoutError,
}


def error_from_body(
    status: int,
    body: Any,
    *,
    peer: str = "the server",
    request_id: str | None = None,
    by_status: Mapping[int, type[AIFactoryError]] = ERROR_BY_STATUS,
) -> AIFactoryError:
    """The exception an HTTP error answer stands for: the class its body's `code` names (the
    same class as on the other side), or, for a body without one or with a code this side
    does not know (a newer peer), the class `by_status` gives its `status`. `body` is the
    decoded JSON (any value); `peer` names the other side in messages.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        cls = by_status.get(status, TransportError)
        found = cls(f"{peer} answered {status} without an error body", details={"status": status})
    else:
        code = str(error.get("code", ""))
        message = str(error.get("message", "")) or f"{peer} answered {status}"
        details = error.get("details")
        cls = error_class_for_code(code)
        if (cls is AIFactoryError and code != AIFactoryError.code) or cls.__name__.startswith("_"):
            # An unknown code (a newer peer) or a private class: the status says enough.
            cls = by_status.get(status, AIFactoryError)
        found = cls(message, details=details if isinstance(details, dict) else {})
    found.request_id = request_id
    return found
