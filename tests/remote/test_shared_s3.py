"""A split deployment on S3: a worker service (a real uvicorn on 127.0.0.1) and the factory
share one bucket on moto's S3 server, configured the way `aifactory serve --storage` does."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec.core  # type: ignore[import-untyped]
import pytest

from aifactory import AsyncFactory, FactoryConfig
from aifactory.auth.signing import generate_worker_key
from aifactory.models import StorageRef
from aifactory.models.enums import StorageScheme
from aifactory.server.deploy import Deployment, RemoteWorker, factory_service, worker_service
from aifactory.storage import BlobStore
from tests.helpers import ADMIN, fast_config
from tests.remote.scenario import run_scenario
from tests.remote.test_three_ways import _in_process
from tests.servers import UvicornThread

pytestmark = pytest.mark.anyio

WORKERS = ["content_granulator", "report_builder"]


def _bucket_files(bucket: str, endpoint: str) -> list[str]:
    # A client of its own, without a listings cache: it sees what the services wrote.
    fs, _ = fsspec.core.url_to_fs(
        f"s3://{bucket}",
        endpoint_url=endpoint,
        use_listings_cache=False,
        skip_instance_cache=True,
    )
    return sorted(str(p).removeprefix(f"{bucket}/") for p in fs.find(bucket))


async def test_a_worker_service_and_the_factory_share_an_s3_bucket(
    tmp_path: Path,
    s3_endpoint: str,
    s3_options: dict[str, dict[str, Any]],
    s3_bucket: Callable[[], str],
) -> None:
    bucket = s3_bucket()
    url = f"s3://{bucket}/factory"
    # The wire placement for stage payloads too (`stage_inline_max_bytes=None`): the
    # embedded default keeps payloads under 64 KiB inline, and this test must see them in S3.
    worker_config = FactoryConfig(
        home=tmp_path / "workers", stage_inline_max_bytes=None
    ).with_storage_url(url, endpoint_url=s3_endpoint)
    factory_config = fast_config(
        tmp_path / "factory", workers=[], stage_inline_max_bytes=None
    ).with_storage_url(url, endpoint_url=s3_endpoint)
    assert worker_config.storage == factory_config.storage
    assert factory_config.storage_config().storage_options == s3_options

    key = generate_worker_key("orchestrator")
    # `aifactory init` on the factory's home: the first admin is made where the data lives.
    async with AsyncFactory.embedded(config=factory_config) as local:
        password = await local.bootstrap_admin(ADMIN)
    # One service per worker, so the report builder reads the granulator's output from S3.
    with (
        UvicornThread(worker_service(worker_config, WORKERS[:1], [key])) as granulator,
        UvicornThread(worker_service(worker_config, WORKERS[1:], [key])) as builder,
    ):
        deployment = Deployment(
            key,
            (RemoteWorker(WORKERS[0], granulator.url), RemoteWorker(WORKERS[1], builder.url)),
        )
        with UvicornThread(factory_service(factory_config, deployment)) as factory_server:
            async with AsyncFactory.connect(factory_server.url) as factory:
                result = await run_scenario(factory, password)

    assert result == await _in_process()  # the same deliverable as one process makes
    files = _bucket_files(bucket, s3_endpoint)
    assert [f for f in files if f.startswith("factory/kv/stages/")], files
    report = "exec_000001/report/report.md"
    assert f"factory/kv/artifacts/{report}" in files
    # The bucket holds exactly the bytes the client downloaded (size and sha256 verified).
    ref = StorageRef(
        StorageScheme.KV,
        "artifacts",
        report,
        size=result["report_size"],
        sha256=result["report_sha256"],
    )
    stored = BlobStore(factory_config.storage_config()).get(ref)
    assert hashlib.sha256(stored).hexdigest() == result["report_sha256"]
    # Nothing went to the homes' local blob folders.
    assert not (tmp_path / "workers" / "blobs").exists()
    assert not (tmp_path / "factory" / "blobs").exists()
