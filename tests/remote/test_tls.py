"""HTTPS end to end, with `trustme` certificates and real uvicorn servers on 127.0.0.1:
clients verify the server's certificate (trusting a CA bundle given to them), answers over
TLS carry HSTS and plain ones do not, and a split deployment works over TLS."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import httpx
import pytest
import trustme

from aifactory import AsyncFactory, BadInputError, Factory, RandomIds, SystemClock, TransportError
from aifactory._embedded import EmbeddedFactory
from aifactory.auth.signing import SignatureVerifier, generate_worker_key
from aifactory.server import worker_app
from aifactory.server.app import serving
from aifactory.server.deploy import Deployment, RemoteWorker, factory_service
from aifactory.server.tls import HSTS_MAX_AGE_S, StrictTransportSecurity, tls_files
from aifactory.storage import BlobStore, StorageConfig
from aifactory.transports.http_workers import HttpWorkerTransport
from aifactory.workers import ContentGranulator, ReportBuilder, WorkerHost
from tests.helpers import ADMIN, fast_config
from tests.remote.scenario import run_scenario
from tests.remote.test_three_ways import _in_process
from tests.servers import UvicornThread, free_port

pytestmark = pytest.mark.anyio


@attrs.frozen
class Pki:
    ca: Path  # the CA certificate, PEM: what clients are told to trust
    cert: Path  # the server's certificate chain
    key: Path  # and its private key

    @property
    def tls(self) -> tuple[str, str]:
        return str(self.cert), str(self.key)


def _pki(folder: Path, ca: trustme.CA) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    issued = ca.issue_cert("127.0.0.1", "localhost")
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    ca.cert_pem.write_to_path(str(pki.ca))
    issued.cert_chain_pems[0].write_to_path(str(pki.cert))
    for extra in issued.cert_chain_pems[1:]:
        extra.write_to_path(str(pki.cert), append=True)
    issued.private_key_pem.write_to_path(str(pki.key))
    return pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _pki(tmp_path_factory.mktemp("pki"), trustme.CA())


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    """A CA that signed nothing the servers here present."""
    path = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
async def served(pki: Pki, tmp_path: Path) -> AsyncIterator[tuple[str, str, str]]:
    """A factory's API over https and another's over plain http (wrapped as `aifactory
    serve` wraps them), and the https one's admin password."""
    runtime = EmbeddedFactory(fast_config(tmp_path))  # entered by the server's lifespan
    password = await runtime.accounts.bootstrap_admin(ADMIN)
    secure_app = StrictTransportSecurity(serving(runtime))
    plain_app = StrictTransportSecurity(serving(EmbeddedFactory(fast_config())))
    with UvicornThread(secure_app, tls=pki.tls) as secure, UvicornThread(plain_app) as plain:
        yield secure.url, plain.url, password


async def test_a_client_trusting_the_ca_logs_in_over_https(
    pki: Pki, served: tuple[str, str, str]
) -> None:
    secure, _, password = served
    assert secure.startswith("https://")
    async with AsyncFactory.connect(secure, ca_bundle=pki.ca) as factory:
        admin = await factory.login(ADMIN, password, login_type="admin")
        assert admin.user.email == ADMIN


async def test_a_client_not_trusting_the_ca_gets_a_clear_transport_error(
    other_ca: Path, served: tuple[str, str, str]
) -> None:
    secure, _, password = served
    for factory in (
        AsyncFactory.connect(secure, ca_bundle=other_ca),
        AsyncFactory.connect(secure),  # the system's CAs know no trustme CA either
    ):
        async with factory:
            with pytest.raises(TransportError) as caught:
                await factory.login(ADMIN, password, login_type="admin")
        assert "certificate is not trusted" in caught.value.message
        assert "ca_bundle" in caught.value.message
        assert caught.value.details["error"] == "certificate_not_trusted"


async def test_the_sync_client_takes_a_ca_bundle_too(
    pki: Pki, served: tuple[str, str, str]
) -> None:
    secure, _, password = served
    with Factory.connect(secure, ca_bundle=pki.ca) as factory:
        assert factory.login(ADMIN, password, login_type="admin").user.email == ADMIN


async def test_hsts_is_sent_over_tls_and_not_over_plain_http(
    pki: Pki, served: tuple[str, str, str]
) -> None:
    secure, plain, _ = served
    context = ssl.create_default_context(cafile=str(pki.ca))
    async with httpx.AsyncClient(verify=context) as client:
        over_tls = [await client.get(f"{secure}{path}") for path in ("/health", "/api/nowhere")]
        over_http = await client.get(f"{plain}/health")
    for answer in over_tls:  # errors too: every answer over https
        assert answer.headers["strict-transport-security"] == f"max-age={HSTS_MAX_AGE_S}"
    assert over_http.status_code == 200
    assert "strict-transport-security" not in over_http.headers


def test_an_unusable_ca_bundle_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(BadInputError, match=f"cannot use the CA bundle {missing}"):
        AsyncFactory.connect("https://127.0.0.1:1", ca_bundle=missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(BadInputError, match="CA bundle"):
        AsyncFactory.connect("https://127.0.0.1:1", ca_bundle=garbage)
    with pytest.raises(BadInputError, match="either a client or a ca_bundle"):
        AsyncFactory.connect("https://127.0.0.1:1", client=httpx.AsyncClient(), ca_bundle=garbage)


def test_tls_files_are_checked_before_serving(pki: Pki, tmp_path: Path) -> None:
    assert tls_files(None, None) == {}
    assert tls_files(*pki.tls) == {"ssl_certfile": str(pki.cert), "ssl_keyfile": str(pki.key)}
    with pytest.raises(BadInputError, match="go together"):
        tls_files(str(pki.cert), None)
    other = _pki(tmp_path / "other", trustme.CA())
    with pytest.raises(BadInputError, match="cannot use the TLS certificate"):
        tls_files(str(pki.cert), str(other.key))  # a key of another certificate


async def test_worker_transport_verifies_the_worker_services_certificate(
    pki: Pki, other_ca: Path, tmp_path: Path
) -> None:
    key = generate_worker_key("orchestrator")
    verifier = SignatureVerifier({key.worker_id: key}, SystemClock())
    blobs = BlobStore(StorageConfig.local(tmp_path / "blobs"))
    host = WorkerHost(ContentGranulator(), blobs, SystemClock(), RandomIds())
    with UvicornThread(worker_app([host], verifier), tls=pki.tls) as service:
        trusting = HttpWorkerTransport(service.url, "content_granulator", key, ca_bundle=pki.ca)
        doubting = HttpWorkerTransport(
            service.url, "content_granulator", key, ca_bundle=other_ca, connect_retries=0
        )
        try:
            assert (await trusting.health()).worker == "content_granulator"
            with pytest.raises(TransportError, match="certificate is not trusted"):
                await doubting.health()
        finally:
            await trusting.aclose()
            await doubting.aclose()


async def test_a_split_deployment_runs_over_tls_end_to_end(pki: Pki, tmp_path: Path) -> None:
    """The factory service and two worker services, all over https with certificates of a
    private CA that every caller is given (`FactoryConfig.ca_bundle`, `connect(ca_bundle=)`)."""
    config = fast_config(tmp_path, workers=[], ca_bundle=pki.ca)
    key = generate_worker_key("orchestrator")
    verifier = SignatureVerifier({key.worker_id: key}, SystemClock())
    blobs = BlobStore(StorageConfig.local(tmp_path / "blobs"))
    ids = RandomIds()
    granulator_app = worker_app(
        [WorkerHost(ContentGranulator(), blobs, SystemClock(), ids)], verifier
    )
    builder_app = worker_app([WorkerHost(ReportBuilder(), blobs, SystemClock(), ids)], verifier)
    with (
        UvicornThread(StrictTransportSecurity(granulator_app), tls=pki.tls) as granulator,
        UvicornThread(StrictTransportSecurity(builder_app), tls=pki.tls) as builder,
    ):
        deployment = Deployment(
            key,
            (
                RemoteWorker("content_granulator", granulator.url),
                RemoteWorker("report_builder", builder.url),
            ),
        )
        async with EmbeddedFactory(config) as setup:
            password = await setup.accounts.bootstrap_admin(ADMIN)
        app = StrictTransportSecurity(factory_service(config, deployment))
        with UvicornThread(app, tls=pki.tls) as server:
            assert server.url.startswith("https://")
            assert granulator.url.startswith("https://")
            async with AsyncFactory.connect(server.url, ca_bundle=pki.ca) as factory:
                result = await run_scenario(factory, password)
                admin = await factory.login(ADMIN, password, login_type="admin")
                workers = await admin.executions.workers()
    assert result == await _in_process()
    assert result["status"] == "completed"
    assert [(w.worker, w.state, w.local) for w in workers] == [
        ("content_granulator", "ready", False),
        ("report_builder", "ready", False),
    ]


def test_serve_refuses_half_a_tls_pair_on_one_line(pki: Pki, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "aifactory.cli", "serve", "factory"),
            *("--home", str(tmp_path), "--tls-cert", str(pki.cert)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: --tls-cert and --tls-key go together: give both or neither"
    ]


def test_aifactory_serve_terminates_tls_and_sends_hsts(pki: Pki, tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    cli = [sys.executable, "-m", "aifactory.cli"]
    made = subprocess.run(
        [*cli, "init", "--home", home, "--admin-email", ADMIN], capture_output=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    port = free_port()
    server = subprocess.Popen(
        [
            *(*cli, "serve", "factory", "--home", home, "--port", str(port)),
            *("--tls-cert", str(pki.cert), "--tls-key", str(pki.key)),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    context = ssl.create_default_context(cafile=str(pki.ca))
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "the server never answered /health"
            try:
                answer = httpx.get(f"https://127.0.0.1:{port}/health", verify=context, timeout=1)
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert answer.status_code == 200
        assert answer.headers["strict-transport-security"] == f"max-age={HSTS_MAX_AGE_S}"
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"https://127.0.0.1:{port}/health", timeout=5)  # the system's CAs
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    assert f"listening on https://127.0.0.1:{port}" in errors
