"""What the HTTP transports share: how they trust servers' certificates, httpx's failures
and error answers as aifactory errors, and how a request that never left is sent again."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any

import httpx

from .._exceptions import (
    ERROR_BY_STATUS,
    AIFactoryError,
    BadInputError,
    ConnectionFailedError,
    TransportError,
    TransportTimeoutError,
    error_from_body,
)
from .._retry import RetryPolicy

__all__ = [
    "REQUEST_ID_HEADER",
    "error_for",
    "resend_policy",
    "tls_context",
    "transport_error",
]

#: The header a server names each request with; errors carry it as `request_id`.
REQUEST_ID_HEADER = "x-request-id"

#: Failures that mean the request never left: safe to send again, whatever it was.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def tls_context(ca_bundle: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """How an HTTP transport checks the servers it calls: their certificates must chain to
    the CAs in the PEM file `ca_bundle` (a private CA, say), else to the system's, and name
    the host. Raises `BadInputError` when the file cannot be read or holds no certificate."""
    if ca_bundle is None:
        return ssl.create_default_context()
    try:
        # Given a file, only its CAs are trusted, as with curl's --cacert.
        return ssl.create_default_context(cafile=os.fspath(ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise BadInputError(
            f"cannot use the CA bundle {os.fspath(ca_bundle)} ({reason}): give a readable "
            "PEM file of CA certificates",
            details={"field": "ca_bundle"},
        ) from exc


def _certificate_problem(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def transport_error(
    exc: httpx.HTTPError, message: str, details: Mapping[str, Any] | None = None
) -> TransportError:
    """`exc` as the transport error it stands for: `ConnectionFailedError` when no
    connection could be made (nothing was sent), `TransportTimeoutError` when the other
    side took too long to answer, else `TransportError`. A certificate the caller does not
    trust is a plain `TransportError` saying so (never sent again: it will not change)."""
    cls: type[TransportError]
    untrusted = _certificate_problem(exc)
    if untrusted is not None:
        reason = untrusted.verify_message or "certificate verify failed"
        return TransportError(
            f"{message}: the server's TLS certificate is not trusted ({reason}); give the CA "
            "that signed it as ca_bundle (--ca-bundle, AIFACTORY_CA_BUNDLE)",
            details={**(details or {}), "error": "certificate_not_trusted"},
        )
    if isinstance(exc, _UNSENT):
        cls = ConnectionFailedError
    elif isinstance(exc, httpx.TimeoutException):
        cls = TransportTimeoutError
    else:
        cls = TransportError
    return cls(message, details={**(details or {}), "error": type(exc).__name__})


def error_for(
    response: httpx.Response,
    body: Any,
    *,
    peer: str = "the server",
    by_status: Mapping[int, type[AIFactoryError]] = ERROR_BY_STATUS,
) -> AIFactoryError:
    """The error an answer of status >= 400 with JSON `body` stands for, carrying the
    server's request id."""
    return error_from_body(
        response.status_code,
        body,
        peer=peer,
        request_id=response.headers.get(REQUEST_ID_HEADER),
        by_status=by_status,
    )


def resend_policy(resends: int, pause_s: float) -> RetryPolicy:
    """Up to `resends` more tries of a request that never left (`ConnectionFailedError`),
    after waits of about `pause_s`, doubling; nothing else is tried again."""
    return RetryPolicy(
        initial_interval_s=pause_s,
        maximum_interval_s=max(pause_s, pause_s * 2 ** max(0, resends - 1)),
        maximum_attempts=1 + resends,
        only=(ConnectionFailedError,),
    )
