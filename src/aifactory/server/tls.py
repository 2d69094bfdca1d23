"""Serving over TLS: the certificate files uvicorn is given, and HSTS on https answers.

`aifactory serve ... --tls-cert FILE --tls-key FILE` terminates TLS in uvicorn itself
(`ssl_certfile`, `ssl_keyfile`). Every served app is wrapped in `StrictTransportSecurity`,
which adds `Strict-Transport-Security` to the answers of requests that came over https
(uvicorn says so in the ASGI scope), so browsers that once reached the factory over TLS
never fall back to plain HTTP; answers over plain HTTP carry no such header, as RFC 6797
asks.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._exceptions import BadInputError

__all__ = ["HSTS_MAX_AGE_S", "StrictTransportSecurity", "tls_files"]

#: How long browsers keep to https for the factory's host once told: one year.
HSTS_MAX_AGE_S = 365 * 24 * 3600


class StrictTransportSecurity:
    """ASGI middleware: `Strict-Transport-Security: max-age=...` on every HTTP answer to a
    request that arrived over https; everything else passes through untouched."""

    def __init__(self, app: ASGIApp, max_age_s: int = HSTS_MAX_AGE_S) -> None:
        self.app = app
        self._header = (b"strict-transport-security", f"max-age={max_age_s}".encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != self._header[0]]
                message = {**message, "headers": [*headers, self._header]}
            await send(message)

        await self.app(scope, receive, send_with_header)


def tls_files(cert: str | None, key: str | None) -> dict[str, Any]:
    """uvicorn's TLS options for the PEM files `cert` (the certificate chain) and `key`
    (its private key); none for neither. Loaded once here, so a wrong file is refused
    before serving, on one line.

    Raises `BadInputError` for one without the other, an unreadable file, or a key that
    does not match the certificate.
    """
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise BadInputError("--tls-cert and --tls-key go together: give both or neither")
    for path in (cert, key):
        if not Path(path).is_file():
            raise BadInputError(f"no TLS file at {path}: give a PEM file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise BadInputError(
            f"cannot use the TLS certificate {cert} with the key {key} ({reason}): give the "
            "PEM certificate chain and its unencrypted private key"
        ) from exc
    return {"ssl_certfile": cert, "ssl_keyfile": key}
