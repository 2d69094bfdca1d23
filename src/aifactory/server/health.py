"""Liveness and readiness: `GET /health/live` and `GET /health/ready` on every service.

`/health/live` says the process answers (200, always): a supervisor restarts a service that
stops answering it. `/health/ready` says whether the service can do its work now, and a load
balancer sends it traffic only while it is 200:

| check        | ready when                                                      |
|--------------|-----------------------------------------------------------------|
| `database`   | the state database answers a read                               |
| `migrations` | its schema is at the newest version this aifactory knows        |
| `storage`    | a small object can be written and deleted under the storage root |

A service checks what it has: the factory, KAM and orchestrator services all three, a worker
service its storage. Not ready is 503 with the same JSON body, naming what is not ready
(`"not_ready": ["storage"]`). The body says only error codes, never paths or database URLs
(the endpoints are public, like `/health`); the service's log has the whole error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._exceptions import AIFactoryError
from ..protocol.codec import dumps
from ..state import Store
from ..storage import BlobStore

__all__ = ["CHECK_TIMEOUT_S", "health_routes", "readiness"]

#: How long each check may take before it counts as not ready.
CHECK_TIMEOUT_S = 5.0

_log = logging.getLogger("aifactory.server.health")


def _failure(name: str, exc: BaseException) -> dict[str, Any]:
    _log.warning("readiness check %s failed", name, exc_info=exc)
    if isinstance(exc, TimeoutError):
        return {"ready": False, "error": "timeout"}
    code = exc.code if isinstance(exc, AIFactoryError) else "unavailable"
    return {"ready": False, "error": code}


async def _database(store: Store, timeout_s: float) -> dict[str, dict[str, Any]]:
    try:
        with anyio.fail_after(timeout_s):
            version = await store.schema_version()
    except Exception as exc:
        return {
            "database": _failure("database", exc),
            "migrations": {"ready": False, "error": "database_unreachable"},
        }
    latest = store.schema_latest()
    migrations = {"ready": version == latest, "schema_version": version, "latest": latest}
    return {"database": {"ready": True}, "migrations": migrations}


async def _storage(blobs: BlobStore, timeout_s: float) -> dict[str, Any]:
    try:
        with anyio.fail_after(timeout_s):
            # Abandoned on timeout: a hung filesystem call must not hang the answer.
            await anyio.to_thread.run_sync(blobs.probe, abandon_on_cancel=True)
    except Exception as exc:
        return _failure("storage", exc)
    return {"ready": True}


async def readiness(
    store: Store | None, storage: Sequence[BlobStore], timeout_s: float = CHECK_TIMEOUT_S
) -> dict[str, Any]:
    """The readiness report of a service with `store` (if any) and `storage`: each check's
    outcome, `status` (`ready` or `not_ready`) and `not_ready`, the names of the checks that
    failed. Raises nothing: a failing check is a not-ready report."""
    checks: dict[str, dict[str, Any]] = {}
    if store is not None:
        checks |= await _database(store, timeout_s)
    # Services sharing one blob store (a worker service's hosts) probe it once.
    for blobs in {id(b): b for b in storage}.values():
        checks["storage"] = await _storage(blobs, timeout_s)
        if not checks["storage"]["ready"]:
            break
    failed = [name for name, check in checks.items() if not check["ready"]]
    return {"status": "not_ready" if failed else "ready", "not_ready": failed, "checks": checks}


def health_routes(service: str, store: Store | None, storage: Sequence[BlobStore]) -> list[Route]:
    """`/health/live` and `/health/ready` for `service` (its name in the answers)."""

    def answer(body: dict[str, Any], status: int = 200) -> Response:
        payload = dumps({"service": service, **body})
        return Response(
            payload,
            status_code=status,
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )

    async def live(request: Request) -> Response:
        return answer({"status": "live"})

    async def ready(request: Request) -> Response:
        report = await readiness(store, storage)
        return answer(report, 503 if report["not_ready"] else 200)

    return [
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
    ]
