"""`/health/live` and `/health/ready` of real services on 127.0.0.1: ready while the
database, its schema and the storage are, 503 naming what is not otherwise."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import httpx

from aifactory._embedded import EmbeddedFactory
from aifactory.auth.signing import SignatureVerifier, generate_worker_key
from aifactory.server import serving
from aifactory.server.deploy import worker_service
from aifactory.server.services import ServiceClient, orchestrator_app
from tests.helpers import fast_config
from tests.servers import UvicornThread


def _block(folder: Path) -> None:
    """Put a file where the storage folder is: nothing can be written below it."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.write_text("not a folder")


def _ready(http: httpx.Client) -> tuple[int, dict[str, Any]]:
    reply = http.get("/health/ready")
    assert reply.headers["cache-control"] == "no-store"
    return reply.status_code, reply.json()


def test_a_factory_is_ready_until_its_storage_is_gone(tmp_path: Path) -> None:
    factory = EmbeddedFactory(fast_config(tmp_path))
    with UvicornThread(serving(factory)) as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/health").json() == {"status": "ok", "service": "factory"}
        assert http.get("/health/live").json() == {"service": "factory", "status": "live"}
        status, body = _ready(http)
        assert status == 200, body
        assert (body["status"], body["not_ready"]) == ("ready", [])
        assert set(body["checks"]) == {"database", "migrations", "storage"}
        latest = body["checks"]["migrations"]["latest"]
        assert body["checks"]["migrations"]["schema_version"] == latest > 0

        _block(Path(factory.blobs.config.root))
        status, body = _ready(http)
        assert status == 503
        assert (body["status"], body["not_ready"]) == ("not_ready", ["storage"])
        assert body["checks"]["storage"] == {"ready": False, "error": "storage_error"}
        assert str(tmp_path) not in str(body)  # public: no paths
        assert http.get("/health/live").status_code == 200  # alive, only not ready
        assert http.get("/health").status_code == 200  # as before, for existing probes


def test_a_factory_whose_schema_is_behind_is_not_ready(tmp_path: Path) -> None:
    config = fast_config(tmp_path, state_url=None)
    factory = EmbeddedFactory(config)
    with UvicornThread(serving(factory)) as server, httpx.Client(base_url=server.url) as http:
        assert _ready(http)[0] == 200
        latest = factory.store.schema_latest()
        with sqlite3.connect(config.database) as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (latest - 1,))
        status, body = _ready(http)
    assert status == 503
    assert body["not_ready"] == ["migrations"]
    assert body["checks"]["migrations"] == {
        "ready": False,
        "schema_version": latest - 1,
        "latest": latest,
    }


def test_a_factory_whose_database_is_closed_is_not_ready(tmp_path: Path) -> None:
    factory = EmbeddedFactory(fast_config(tmp_path))
    with UvicornThread(serving(factory)) as server, httpx.Client(base_url=server.url) as http:
        assert _ready(http)[0] == 200
        anyio.run(factory.store.aclose)
        status, body = _ready(http)
    assert status == 503
    assert body["not_ready"] == ["database", "migrations"]
    assert body["checks"]["migrations"] == {"ready": False, "error": "database_unreachable"}


def test_the_orchestrator_service_reports_its_readiness(tmp_path: Path) -> None:
    key = generate_worker_key("kam")
    factory = EmbeddedFactory(fast_config(tmp_path))
    verifier = SignatureVerifier({key.worker_id: key}, factory.config.clock)
    # Never called: the KAM service is only named (a closed loopback port).
    app = orchestrator_app(factory, verifier, ServiceClient("http://127.0.0.1:9", key))
    with UvicornThread(app) as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/health/live").json()["service"] == "orchestrator"
        status, body = _ready(http)
        assert (status, body["service"], body["not_ready"]) == (200, "orchestrator", [])
        _block(Path(factory.blobs.config.root))
        status, body = _ready(http)
    assert (status, body["not_ready"]) == (503, ["storage"])


def test_a_worker_service_is_ready_while_its_storage_is(tmp_path: Path) -> None:
    config = fast_config(tmp_path)
    app = worker_service(config, ["content_granulator"], [generate_worker_key("orchestrator")])
    with UvicornThread(app) as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/health/live").json() == {"service": "worker", "status": "live"}
        status, body = _ready(http)
        assert status == 200
        assert body["checks"] == {"storage": {"ready": True}}
        _block(Path(config.storage_config().root))
        status, body = _ready(http)
        assert (status, body["not_ready"]) == (503, ["storage"])
        assert http.get("/health").json()["healthy"] is True  # the workers themselves are fine
