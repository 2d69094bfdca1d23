"""Worker request signing: each caller signs its requests with its own HMAC-SHA256 key.

The original system shipped one bearer token, hard-coded in every service: whoever read one
service's code could call them all, forever. Here every worker (and the orchestrator) holds
its own `WorkerKey`, configured outside the code, and signs each request:

| header        | value                                                              |
|---------------|--------------------------------------------------------------------|
| `X-Worker-ID` | the caller's id (the key's `worker_id`)                            |
| `X-Signature` | `TIMESTAMP.NONCE.SIGNATURE`, three fields joined by dots:          |
|               | unix seconds as a decimal integer; a nonce of at least 128 random  |
|               | bits, base64url without padding; the HMAC-SHA256 of the canonical  |
|               | string with the caller's secret, base64url without padding (43     |
|               | characters)                                                        |

Two headers rather than one per field, and base64url rather than hex: every protocol call
carries them, and the orchestrator's three calls per stage are small otherwise.

The canonical string joins six lines with `\\n`:

```
METHOD            upper case, e.g. POST
PATH?QUERY        the path as sent (percent-encoded); `?QUERY` only when there is a query
SHA256(BODY)      hex digest of the exact body bytes (of b"" when there is none)
TIMESTAMP
NONCE
WORKER_ID
```

`SignatureVerifier` refuses (`AuthenticationError`, 401) a missing or malformed header, an
unknown worker id, a timestamp more than `max_skew_s` (300 s) off in either direction, a
nonce seen before within its validity window, and any change to the method, path, query,
body, timestamp, nonce or worker id. Signatures are compared in constant time. Errors say
what failed, never a value.

```python
key = generate_worker_key("orchestrator")
headers = sign("POST", "/api/process?worker=report_builder", body, key, now=time.time())
verifier = SignatureVerifier({key.worker_id: key}, SystemClock())
assert verifier.verify("POST", "/api/process?worker=report_builder", headers, body) == key.worker_id
```
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import re
import secrets
import threading
from collections.abc import Mapping

import attrs

from .._clock import Clock
from .._exceptions import AuthenticationError, BadInputError, QuotaExceededError

__all__ = [
    "BEARER_ID",
    "SIGNATURE_HEADER",
    "WORKER_ID_HEADER",
    "SignatureVerifier",
    "WorkerKey",
    "canonical_string",
    "generate_worker_key",
    "new_nonce",
    "sign",
]

WORKER_ID_HEADER = "X-Worker-ID"
SIGNATURE_HEADER = "X-Signature"
#: The id `SignatureVerifier.verify` returns for a request carrying the static bearer token.
BEARER_ID = "bearer"

_WORKER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{22,128}")  # 22 base64url characters carry 128 bits
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}")  # 256 bits in base64url
_MIN_SECRET_BYTES = 16
_MIN_BEARER_CHARS = 16


def _check_worker_id(worker_id: str) -> str:
    if not _WORKER_ID.fullmatch(worker_id):
        raise BadInputError(
            "a worker id is 1-64 letters, digits, '_', '.' or '-'",
            details={"worker_id": worker_id[:64]},
        )
    return worker_id


def _validate_id(_: object, __: object, value: str) -> None:
    _check_worker_id(value)


def _validate_secret(_: object, __: object, value: bytes) -> None:
    if len(value) < _MIN_SECRET_BYTES:
        raise BadInputError(f"a worker secret has at least {_MIN_SECRET_BYTES} bytes")


@attrs.frozen
class WorkerKey:
    """One worker's signing identity: its id and its secret (never shown by `repr`).

    Its text form, for configuration files and environment of deployments, is
    `worker_id:base64url(secret)` (`to_text` / `parse`). Raises `BadInputError` for an id that
    is not 1-64 of `[A-Za-z0-9_.-]` or a secret shorter than 16 bytes.
    """

    worker_id: str = attrs.field(validator=_validate_id)
    secret: bytes = attrs.field(repr=False, validator=_validate_secret)

    def to_text(self) -> str:
        """`worker_id:base64url(secret)` (no padding): a secret, store it like a password."""
        encoded = base64.urlsafe_b64encode(self.secret).rstrip(b"=").decode("ascii")
        return f"{self.worker_id}:{encoded}"

    @classmethod
    def parse(cls, text: str) -> WorkerKey:
        """Read the `worker_id:base64url(secret)` form back.

        Raises `BadInputError` (whose message never contains the secret) if it is malformed.
        """
        worker_id, sep, encoded = text.strip().partition(":")
        if not sep or not encoded:
            raise BadInputError("a worker key is written 'worker_id:base64url(secret)'")
        try:
            padded = encoded + "=" * (-len(encoded) % 4)
            secret = base64.b64decode(padded, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadInputError("the secret of a worker key is not base64url") from exc
        return cls(_check_worker_id(worker_id), secret)


def generate_worker_key(worker_id: str) -> WorkerKey:
    """A new key for `worker_id` with 32 random bytes. Raises `BadInputError` for a bad id."""
    return WorkerKey(worker_id, secrets.token_bytes(32))


def new_nonce() -> str:
    """A fresh nonce: 128 random bits, base64url."""
    return secrets.token_urlsafe(16)


def canonical_string(
    method: str, path_with_query: str, body: bytes, timestamp: str, nonce: str, worker_id: str
) -> bytes:
    """The bytes a signature covers (see the module docstring)."""
    digest = hashlib.sha256(body).hexdigest()
    lines = (method.upper(), path_with_query, digest, timestamp, nonce, worker_id)
    return "\n".join(lines).encode("utf-8")


def _signature(key: WorkerKey, message: bytes) -> str:
    digest = hmac.new(key.secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign(
    method: str,
    path_with_query: str,
    body: bytes,
    key: WorkerKey,
    *,
    now: float,
    nonce: str | None = None,
) -> dict[str, str]:
    """The two signature headers for one request sent at unix time `now`.

    `path_with_query` is the path exactly as sent (percent-encoded), followed by `?query`
    when the URL has one. A fresh random nonce is drawn unless `nonce` is given (tests).
    """
    timestamp = str(int(now))
    nonce = nonce if nonce is not None else new_nonce()
    message = canonical_string(method, path_with_query, body, timestamp, nonce, key.worker_id)
    signature = _signature(key, message)
    return {WORKER_ID_HEADER: key.worker_id, SIGNATURE_HEADER: f"{timestamp}.{nonce}.{signature}"}


class SignatureVerifier:
    """Checks signed worker requests against the keys of the workers allowed to call.

    Nonces are remembered until their timestamp leaves the accepted window (and at least
    `nonce_ttl_s` after receipt, which covers a wall clock stepping back), then pruned, so
    memory holds only the requests of the last few minutes; beyond `max_nonces` of them,
    requests are refused (`QuotaExceededError`) rather than a nonce forgotten early. Only
    correctly signed requests reach the nonce cache, so only key holders can fill it.
    Safe to share between threads.

    `static_bearer` accepts `Authorization: Bearer <token>` in place of a signature. It exists
    only to migrate services of the original system, which used one shared token; it is off
    (`None`) by default, must come from configuration, never code, and authenticates the
    caller as `"bearer"`, not as any worker. Raises `BadInputError` if a key is filed under
    another id, or the bearer token is shorter than 16 characters.
    """

    def __init__(
        self,
        keys: Mapping[str, WorkerKey],
        clock: Clock,
        *,
        max_skew_s: float = 300,
        nonce_ttl_s: float = 600,
        max_nonces: int = 1_000_000,
        static_bearer: str | None = None,
    ) -> None:
        for worker_id, key in keys.items():
            if key.worker_id != worker_id:
                raise BadInputError(
                    "a worker key is filed under another worker id",
                    details={"worker_id": worker_id},
                )
        if static_bearer is not None and len(static_bearer) < _MIN_BEARER_CHARS:
            raise BadInputError(
                f"a static bearer token has at least {_MIN_BEARER_CHARS} characters"
            )
        self._keys = dict(keys)
        self._clock = clock
        self.max_skew_s = max_skew_s
        self.nonce_ttl_s = nonce_ttl_s
        self.max_nonces = max_nonces
        self._bearer = static_bearer.encode("utf-8") if static_bearer is not None else None
        self._lock = threading.Lock()
        self._nonces: dict[tuple[str, str], float] = {}
        self._expiry: list[tuple[float, tuple[str, str]]] = []  # a heap, soonest first

    def verify(
        self, method: str, path_with_query: str, headers: Mapping[str, str], body: bytes
    ) -> str:
        """The id of the worker that signed this request.

        `headers` may use any letter case. Raises `AuthenticationError` for a missing or
        malformed header, an unknown worker, a timestamp outside the window, a reused nonce
        or a signature that does not match; `QuotaExceededError` when the nonce cache is full.
        """
        found = {name.lower(): value for name, value in headers.items()}
        worker_id = found.get(WORKER_ID_HEADER.lower())
        signed = found.get(SIGNATURE_HEADER.lower())
        if worker_id is None and signed is None:
            authorization = found.get("authorization")
            if authorization is not None:
                return self._verify_bearer(authorization)
        if not worker_id:
            raise AuthenticationError(
                f"missing {WORKER_ID_HEADER} header", details={"header": WORKER_ID_HEADER}
            )
        if not signed:
            raise AuthenticationError(
                f"missing {SIGNATURE_HEADER} header", details={"header": SIGNATURE_HEADER}
            )
        fields = signed.split(".")
        if len(fields) != 3:
            raise AuthenticationError("malformed X-Signature header (TIMESTAMP.NONCE.SIGNATURE)")
        timestamp, nonce, signature = fields
        if not _TIMESTAMP.fullmatch(timestamp):
            raise AuthenticationError("malformed timestamp in the X-Signature header")
        if not _NONCE.fullmatch(nonce):
            raise AuthenticationError(
                "malformed nonce in the X-Signature header (22-128 base64url characters)"
            )
        if not _SIGNATURE.fullmatch(signature):
            raise AuthenticationError(
                "malformed signature in the X-Signature header (43 base64url characters)"
            )
        key = self._keys.get(worker_id)
        if key is None:
            raise AuthenticationError("unknown worker id")
        now = self._clock.now().timestamp()
        sent = int(timestamp)
        if abs(now - sent) > self.max_skew_s:
            raise AuthenticationError(
                f"the signature's timestamp is more than {self.max_skew_s:g} s away from the "
                "server's clock",
                details={"max_skew_s": self.max_skew_s},
            )
        message = canonical_string(method, path_with_query, body, timestamp, nonce, worker_id)
        if not hmac.compare_digest(_signature(key, message), signature):
            raise AuthenticationError("signature does not match the request")
        self._remember(worker_id, nonce, sent, now)
        return worker_id

    def _verify_bearer(self, authorization: str) -> str:
        scheme, _, token = authorization.partition(" ")
        if self._bearer is None:
            raise AuthenticationError("bearer tokens are not accepted here; sign the request")
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("malformed Authorization header")
        if not hmac.compare_digest(token.strip().encode("utf-8"), self._bearer):
            raise AuthenticationError("bearer token does not match")
        return BEARER_ID

    def _remember(self, worker_id: str, nonce: str, sent: int, now: float) -> None:
        key = (worker_id, nonce)
        until = max(sent + self.max_skew_s, now + self.nonce_ttl_s)
        with self._lock:
            while self._expiry and self._expiry[0][0] < now:
                _, old = heapq.heappop(self._expiry)
                self._nonces.pop(old, None)
            if key in self._nonces:
                raise AuthenticationError("nonce already used (a replayed request)")
            if len(self._nonces) >= self.max_nonces:
                raise QuotaExceededError("too many signed requests in the replay window")
            self._nonces[key] = until
            heapq.heappush(self._expiry, (until, key))

    @property
    def remembered_nonces(self) -> int:
        """How many nonces are held now (expired ones go at the next request)."""
        with self._lock:
            return len(self._nonces)
