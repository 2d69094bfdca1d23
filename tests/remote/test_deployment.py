"""The deployment `docs/scaling.md` describes, as real processes on 127.0.0.1: state in
PostgreSQL, blobs in S3 (moto's server), two orchestrator replicas, two worker services and
one KAM/API service, all started with `aifactory serve` (the workers through the test's
counting wrapper of it) and driven by a client over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec.core  # type: ignore[import-untyped]
import pytest

import aifactory
from tests.postgres_server import PostgresServer
from tests.remote.split_processes import ADMIN, SplitDeployment

EXECUTIONS = 6


@pytest.fixture
def deployment(
    tmp_path: Path,
    postgres_server: PostgresServer,
    s3_endpoint: str,
    s3_options: dict[str, dict[str, Any]],
    s3_bucket: Callable[[], str],
) -> Iterator[tuple[SplitDeployment, str]]:
    import os

    url = postgres_server.fresh_schema()
    storage = f"s3://{s3_bucket()}/factory"
    credentials = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    split = SplitDeployment(
        tmp_path / "home",
        state=url,
        orchestrators=2,
        worker_services=2,
        storage=(storage, s3_endpoint),
        env=credentials,
    )
    try:
        with split:
            yield split, storage
            print("\n".join(split.logs()))  # pytest shows it when the test failed
    finally:
        postgres_server.drop_schema(url)


def test_a_postgresql_and_s3_deployment_runs_requests_end_to_end(
    deployment: tuple[SplitDeployment, str], s3_options: dict[str, dict[str, Any]]
) -> None:
    split, storage = deployment
    with aifactory.connect(split.kam.url) as factory:
        admin = factory.login(ADMIN, split.admin_password, login_type="admin")
        acme = admin.clients.create(name="Acme", tier="enterprise", monthly_budget_usd=50)
        started = []
        for n in range(EXECUTIONS):
            request = admin.requests.create(
                title=f"Market analysis {n}", category="research", client_id=acme.id
            )
            admin.requests.assign_template(request.id, "quick_research", {"granularity": 2})
            started.append((request.id, admin.requests.execute(request.id).id))
        for request_id, execution_id in started:
            assert admin.executions.wait(execution_id, timeout_s=60).status.value == "completed"
            [deliverable] = admin.deliverables.list(request_id)
            assert deliverable.ref.uri.startswith("kv://") or deliverable.ref.uri.startswith(
                "r2://"
            )
            assert admin.deliverables.download(deliverable.id).startswith(b"# ")
    # The deliverables are objects in the bucket, not files under the home.
    fs, root = fsspec.core.url_to_fs(storage, **s3_options["s3"], use_listings_cache=False)
    objects = fs.find(root)
    assert sum(p.endswith("report.md") for p in objects) == EXECUTIONS
    assert not (split.home / "blobs").exists()
    # Every stage reached a worker service once; the state is PostgreSQL's: no SQLite file.
    calls = (split.home / "worker-calls.txt").read_text().splitlines()
    assert len(calls) == 2 * EXECUTIONS
    assert not (split.home / "state.sqlite3").exists()
