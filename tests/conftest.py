"""Shared fixtures: every async test runs on asyncio and on trio; S3 storage on moto's S3 server
in this process, on 127.0.0.1 (for `tests/storage` and the deployments in `tests/remote`);
PostgreSQL on a throwaway server on 127.0.0.1, a fresh schema for each test that asks."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec.core  # type: ignore[import-untyped]
import pytest

from tests.postgres_server import PostgresServer


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of an S3 API (moto) on 127.0.0.1, shared by the session.

    Skips, saying why, where s3fs or moto's server is not installed.
    """
    try:
        import s3fs  # type: ignore[import-untyped]  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.skip(f"the s3 backend needs s3fs and moto[server] (pip install -e '.[dev]'): {exc}")

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_options(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, dict[str, Any]]:
    """Storage options reaching the moto server, with dummy credentials for this test only.

    Nothing may fall back to a real AWS endpoint, the instance metadata service or a
    developer's own AWS profile: a client opened without the options is sent to a closed port
    on 127.0.0.1 and fails there.
    """
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return {"s3": {"endpoint_url": s3_endpoint}}


@pytest.fixture
def s3_bucket(s3_options: dict[str, dict[str, Any]]) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty buckets on the moto server and empties them afterwards."""
    fs, _ = fsspec.core.url_to_fs("s3://", **s3_options["s3"], use_listings_cache=False)
    made: list[str] = []

    def make() -> str:
        bucket = f"aifactory-{secrets.token_hex(6)}"
        fs.mkdir(bucket)
        made.append(bucket)
        return bucket

    yield make
    for bucket in made:
        fs.rm(bucket, recursive=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session, started by the first test that needs it.

    Fails (never skips) where PostgreSQL's binaries are missing: .ci/run installs them.
    """
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of an empty schema of this test's own, dropped afterwards.

    Connections made from the URL create and find tables in that schema
    (`postgresql://postgres@127.0.0.1:PORT/aifactory_test?options=-csearch_path%3DSCHEMA`).
    Close them before the test ends: a connection that still holds locks in the schema makes
    the drop fail.
    """
    url = postgres_server.fresh_schema()
    yield url
    postgres_server.drop_schema(url)


@pytest.fixture(autouse=True)
def state_backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """With `AIFACTORY_TEST_STATE=postgresql`, the factories and orchestrators that tests
    build with `fast_config` or the orchestrator `Harness` keep their state in PostgreSQL (a
    fresh schema per test) instead of SQLite: the store-dependent suites run on both."""
    if os.environ.get("AIFACTORY_TEST_STATE", "sqlite") != "postgresql":
        yield
        return
    from tests import helpers

    monkeypatch.setattr(helpers, "TEST_STATE_URL", request.getfixturevalue("postgres_url"))
    yield
    while helpers.TEST_STORES:
        helpers.TEST_STORES.pop().close()
