"""Request bodies are limited while they are read: a body over the limit, declared by its
`Content-Length` or streamed chunked, is refused with 413 and the JSON error body before
any authentication work, and never sits in memory whole."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest

from aifactory._embedded import EmbeddedFactory
from aifactory.server import serving
from tests.helpers import fast_config
from tests.servers import UvicornThread, free_port

MiB = 1024 * 1024
SERVER = """
import sys, uvicorn
from aifactory import FactoryConfig
from aifactory._embedded import EmbeddedFactory
from aifactory.server import serving
app = serving(EmbeddedFactory(FactoryConfig(home=None, api_rate_limits=False)))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    block = b"x" * size
    for _ in range(total // size):
        yield block


def _error(reply: httpx.Response) -> dict[str, object]:
    error = reply.json()["error"]
    assert set(error) == {"code", "message", "details"}
    return dict(error)


@pytest.fixture
def small_limit() -> Iterator[str]:
    runtime = EmbeddedFactory(attrs.evolve(fast_config(), max_body_bytes=4096))
    with UvicornThread(serving(runtime)) as server:
        yield server.url


@pytest.mark.parametrize("path", ["/api/auth/login", "/api/kam/requests", "/api/kam/clients"])
def test_the_configured_limit_holds_for_declared_and_chunked_bodies(
    small_limit: str, path: str
) -> None:
    with httpx.Client(base_url=small_limit) as http:
        # Declared: refused before the body is read, and before authentication (no session).
        reply = http.post(path, content=b"{" + b" " * 5000 + b"}")
        assert reply.status_code == 413
        assert _error(reply)["details"] == {"max_bytes": 4096}
        # Chunked (no Content-Length): refused once the limit is passed.
        reply = http.post(path, content=_chunks(64 * 1024, 1024))
        assert "content-length" not in reply.request.headers
        assert reply.status_code == 413
        assert _error(reply)["code"] == "payload_too_large"
        # Within the limit, declared or chunked, the body is read and judged as usual.
        for content in (b"{}", iter([b"{", b"}"])):
            reply = http.post(path, content=content)
            assert reply.status_code in (400, 401), reply.text
        # The connection is still good for the next request.
        assert http.get("/health").status_code == 200


def _memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_memory_stays_flat_under_many_oversize_bodies() -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server never answered /health"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        with httpx.Client(base_url=url, timeout=60) as http:
            for _ in range(3):  # warm up: the routes, the JSON paths, the allocator
                http.post("/api/auth/login", json={"username": "a@b.example", "password": "x"})
            # The peak so far is the start-up's (imports): reset it to the current RSS, and
            # sample RSS while the bodies stream in besides.
            Path(f"/proc/{server.pid}/clear_refs").write_text("5")
            before = _memory_kib(server.pid)
            samples = [before["VmRSS"]]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.005):
                    samples.append(_memory_kib(server.pid)["VmRSS"])

            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                size = 50 * MiB
                for i in range(6):
                    path = "/api/auth/login" if i % 2 else "/api/kam/requests"
                    headers = {"content-length": str(size)} if i < 3 else {}
                    reply = http.post(path, content=_chunks(size), headers=headers)
                    assert reply.status_code == 413, reply.text
                    assert ("content-length" in reply.request.headers) == (i < 3)
                assert http.get("/health").status_code == 200
            finally:
                done.set()
                sampler.join()
            after = _memory_kib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    peak_mib = (max(after["VmHWM"], *samples) - before["VmRSS"]) / 1024
    print(
        f"\nserver memory: RSS {before['VmRSS'] / 1024:.1f} -> {after['VmRSS'] / 1024:.1f} MiB, "
        f"peak +{peak_mib:.1f} MiB ({len(samples)} samples) over 6 bodies of 50 MiB"
    )
    # One 50 MiB body read whole would add 50 MiB to the peak at least.
    assert peak_mib < 20
