"""Real servers on 127.0.0.1 for tests: uvicorn in a thread, or `aifactory serve` as a
process; started, waited for, stopped cleanly."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import IO, Any, Self

import httpx
import uvicorn


def free_port() -> int:
    """A loopback port nobody listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def cli_server(
    *args: str, env: Mapping[str, str], timeout_s: float = 30, stderr: IO[str] | None = None
) -> Iterator[str]:
    """`aifactory ARGS --host 127.0.0.1 --port P` as a process until the block ends; yields
    its URL once `/health` answers 200. Its error output goes to `stderr` if given (a file
    the test reads), else into the `AssertionError` raised if it exits first or never
    answers."""
    port = free_port()
    command = [sys.executable, "-m", "aifactory.cli", *args, "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        env=dict(env),
        stderr=subprocess.PIPE if stderr is None else stderr,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                said = server.stderr.read() if server.stderr else "see its error output"
                raise AssertionError(f"the server exited with {server.returncode}: {said}")
            assert time.monotonic() < deadline, "the server never answered /health"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.communicate(timeout=timeout_s)


class UvicornThread:
    """Serves an ASGI app on a free loopback port until stopped (its lifespan runs); over
    https with `tls`, the PEM files of a certificate chain and its key."""

    def __init__(self, app: Any, port: int = 0, *, tls: tuple[str, str] | None = None) -> None:
        # The socket is bound at once, so the URL is known before the app is (services
        # that must know each other's address); set `app` any time before `start`.
        # IPPROTO_TCP explicitly: asyncio only turns Nagle's algorithm off for sockets it
        # knows to be TCP, and responses written in two parts would wait ~40 ms for an ack.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        # A given port may be one a stopped server just used (a restart).
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port = self._sock.getsockname()[1]
        self.app = app
        self.tls = tls
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> Self:
        certfile, keyfile = self.tls or (None, None)
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
