"""The account side and the orchestrator as separate services (four uvicorn servers on
127.0.0.1: KAM, orchestrator, two worker services) give the same results as one process."""

from __future__ import annotations

from pathlib import Path

import pytest

from aifactory import AsyncFactory, RandomIds, SystemClock
from aifactory.auth.signing import SignatureVerifier, generate_worker_key
from aifactory.server import worker_app
from aifactory.server.deploy import Deployment, RemoteWorker, kam_service, orchestrator_service
from aifactory.state.sqlite import SQLiteStore
from aifactory.storage import BlobStore, StorageConfig
from aifactory.workers import ContentGranulator, ReportBuilder, WorkerHost
from tests.helpers import ADMIN, fast_config
from tests.remote.scenario import run_scenario
from tests.remote.test_three_ways import _in_process
from tests.servers import UvicornThread

pytestmark = pytest.mark.anyio


async def test_kam_and_orchestrator_as_separate_services(tmp_path: Path) -> None:
    kam_key, orch_key = generate_worker_key("kam"), generate_worker_key("orchestrator")
    blobs = BlobStore(StorageConfig.local(tmp_path / "blobs"))
    workers_trust = SignatureVerifier({orch_key.worker_id: orch_key}, SystemClock())
    ids = RandomIds()
    hosts = [
        worker_app([WorkerHost(ContentGranulator(), blobs, SystemClock(), ids)], workers_trust),
        worker_app([WorkerHost(ReportBuilder(), blobs, SystemClock(), ids)], workers_trust),
    ]
    config = fast_config(tmp_path, workers=[])
    with UvicornThread(hosts[0]) as granulator, UvicornThread(hosts[1]) as builder:
        remote = (
            RemoteWorker("content_granulator", granulator.url),
            RemoteWorker("report_builder", builder.url),
        )
        # Ports first, apps after: each service must know the other's address.
        kam_server = UvicornThread(None)
        orch_server = UvicornThread(None)
        kam_app = kam_service(
            config,
            Deployment(kam_key, remote, (orch_key,), orchestrator_url=orch_server.url),
        )
        orch_app = orchestrator_service(
            config, Deployment(orch_key, remote, (kam_key,), kam_url=kam_server.url)
        )
        password = None
        store = SQLiteStore(tmp_path / "state.sqlite3")
        from aifactory.kam.accounts import AccountService
        from aifactory.kam.audit import AuditLog

        accounts = AccountService(
            store, AuditLog(store, config.clock), config.clock, RandomIds(), config.password_hasher
        )
        password = await accounts.bootstrap_admin(ADMIN)
        await store.aclose()
        kam_server.app = kam_app
        orch_server.app = orch_app
        with kam_server, orch_server:
            async with AsyncFactory.connect(kam_server.url) as factory:
                result = await run_scenario(factory, password)
                # The workers as the orchestrator service's registry sees them.
                admin = await factory.login(ADMIN, password, login_type="admin")
                workers = await admin.executions.workers()
    expected = await _in_process()
    assert result == expected
    assert [(w.worker, w.state, w.local, w.failures) for w in workers] == [
        ("content_granulator", "ready", False, 0),
        ("report_builder", "ready", False, 0),
    ]
    # Seen over HTTP: the last time each answered came back through both services.
    assert all(w.last_seen is not None for w in workers)
