"""What the HTTP transports share: httpx's failures and error answers as aifactory errors,
and how a request that never left is sent again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from .._exceptions import (
    ERROR_BY_STATUS,
    AIFactoryError,
    ConnectionFailedError,
    TransportError,
    TransportTimeoutError,
    error_from_body,
)
from .._retry import RetryPolicy

__all__ = ["REQUEST_ID_HEADER", "error_for", "resend_policy", "transport_error"]

#: The header a server names each request with; errors carry it as `request_id`.
REQUEST_ID_HEADER = "x-request-id"

#: Failures that mean the request never left: safe to send again, whatever it was.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def transport_error(
    exc: httpx.HTTPError, message: str, details: Mapping[str, Any] | None = None
) -> TransportError:
    """`exc` as the transport error it stands for: `ConnectionFailedError` when no
    connection could be made (nothing was sent), `TransportTimeoutError` when the other
    side took too long to answer, else `TransportError`."""
    cls: type[TransportError]
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
