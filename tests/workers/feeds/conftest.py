"""A local feed server on 127.0.0.1, an injected resolver and a connector that only dials it.

Nothing in these tests may open a connection beyond loopback, even if the SSRF guard were
broken: every `SafeFetcher` here gets `LoopbackConnector`, which records each address the
fetcher asks for and dials only the local server (a "public" address is routed there too).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trustme
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

DATA = Path(__file__).parent / "data"
PUBLIC_IP = "93.184.216.34"  # globally routable; LoopbackConnector routes it to the local server
LAST_MODIFIED = "Wed, 31 Dec 2025 12:00:00 GMT"
BIG = 20 * 1024 * 1024
MEDIA_TYPES = {
    "rss2.xml": "application/rss+xml",
    "atom.xml": "application/atom+xml",
    "feed.json": "application/feed+json",
    "malformed.json": "application/feed+json",
}


class FeedServer:
    """Serves `data/` feeds with ETag/Last-Modified, redirects, huge and slow bodies."""

    def __init__(self, certfile: Path | None = None) -> None:
        self.certfile = certfile  # key and certificate chain in one PEM file: serve https
        self.hits: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self.headers: list[tuple[str, dict[str, str]]] = []
        self.port = 0
        self._bomb = gzip.compress(b"\0" * BIG)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def reset(self) -> None:
        self.hits.clear()
        self.not_modified.clear()
        self.headers.clear()

    def _seen(self, request: Request) -> None:
        self.hits[request.url.path] += 1
        self.headers.append((request.url.path, dict(request.headers)))

    async def feed(self, request: Request) -> Response:
        self._seen(request)
        name = request.path_params["name"]
        path = DATA / name
        if "/" in name or not path.is_file():
            return Response(status_code=404)
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        validators = {"ETag": etag, "Last-Modified": LAST_MODIFIED}
        if request.url.path.startswith("/plain/"):
            validators = {}
        elif request.headers.get("if-none-match") == etag or (
            "if-none-match" not in request.headers
            and request.headers.get("if-modified-since") == LAST_MODIFIED
        ):
            self.not_modified[request.url.path] += 1
            return Response(status_code=304, headers=validators)
        media_type = MEDIA_TYPES.get(name, "application/xml")
        return Response(body, media_type=media_type, headers=validators)

    async def redirect(self, request: Request) -> Response:
        self._seen(request)
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def hop(self, request: Request) -> Response:
        self._seen(request)
        left = int(request.path_params["left"])
        if left == 0:
            return Response(b"arrived", media_type="text/plain")
        return RedirectResponse(f"/hop/{left - 1}", status_code=301)

    async def big(self, request: Request) -> Response:
        self._seen(request)

        async def chunks() -> AsyncIterator[bytes]:
            chunk = b"x" * 65536
            for _ in range(BIG // len(chunk)):
                yield chunk

        declared = {"Content-Length": str(BIG)} if request.url.path == "/big-declared" else {}
        return StreamingResponse(chunks(), media_type="application/xml", headers=declared)

    async def bomb(self, request: Request) -> Response:
        self._seen(request)
        return Response(
            self._bomb, media_type="application/xml", headers={"Content-Encoding": "gzip"}
        )

    async def slow(self, request: Request) -> Response:
        self._seen(request)
        for _ in range(50):
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.1)
        return Response(b"late", media_type="text/plain")

    async def page(self, request: Request) -> Response:
        self._seen(request)
        return HTMLResponse(
            "<!doctype html><html><head><title>Blog</title>"
            '<link rel="alternate" type="application/rss+xml" href="/feeds/rss2.xml">'
            '<link rel="alternate" type="application/atom+xml" href="feeds/atom.xml">'
            '<link rel="stylesheet" href="/style.css"></head><body>Hi</body></html>'
        )

    async def bare_page(self, request: Request) -> Response:
        self._seen(request)
        return HTMLResponse("<html><head><title>No feeds here</title></head></html>")

    async def root_atom(self, request: Request) -> Response:
        self._seen(request)
        return Response((DATA / "atom.xml").read_bytes(), media_type="application/atom+xml")

    async def missing(self, request: Request) -> Response:
        self._seen(request)
        return Response(b"not here", status_code=404)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/feeds/{name}", self.feed),
                Route("/plain/{name}", self.feed),
                Route("/redirect", self.redirect),
                Route("/hop/{left:int}", self.hop),
                Route("/big", self.big),
                Route("/big-declared", self.big),
                Route("/bomb", self.bomb),
                Route("/slow", self.slow),
                Route("/page", self.page),
                Route("/bare/page", self.bare_page),
                Route("/atom.xml", self.root_atom),
                Route("/{rest:path}", self.missing),
            ]
        )

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        pem = str(self.certfile) if self.certfile else None
        config = uvicorn.Config(
            self.app(),
            lifespan="off",
            log_level="warning",
            access_log=False,
            http="h11",
            ws="none",
            ssl_certfile=pem,
            ssl_keyfile=pem,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the local feed server did not start")
            time.sleep(0.01)
        self._socket = sock

    def stop(self) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()


@attrs.frozen
class Dial:
    """One connection the fetcher asked for: the address, port, Host header and SNI name."""

    address: str
    port: int | None
    host: str
    sni: str | None


class LoopbackConnector:
    """A `Connector` that records every dial and only ever connects to the local server.

    `PUBLIC_IP` over http goes to `server`; over https to `tls_server`, if given, verified
    with `ssl_context` against the name in the request's SNI extension.
    """

    def __init__(
        self,
        server: FeedServer,
        tls_server: FeedServer | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.server = server
        self.tls_server = tls_server
        self.ssl_context = ssl_context or ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.dials: list[Dial] = []
        self.received = 0  # body bytes (as sent, before decoding) handed to the fetcher

    @property
    def addresses(self) -> list[str]:
        return [dial.address for dial in self.dials]

    def __call__(self) -> httpx.AsyncBaseTransport:
        return _RecordingTransport(self)


class _RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self, owner: LoopbackConnector) -> None:
        self._owner = owner
        self._inner = httpx.AsyncHTTPTransport(verify=owner.ssl_context, trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        sni = request.extensions.get("sni_hostname")
        self._owner.dials.append(Dial(url.host, url.port, request.headers["host"], sni))
        local = self._owner.server.port
        tls = self._owner.tls_server
        if url.scheme == "http" and url.host == PUBLIC_IP:
            request.url = url.copy_with(host="127.0.0.1", port=local)
        elif url.scheme == "https" and url.host == PUBLIC_IP and tls is not None:
            request.url = url.copy_with(host="127.0.0.1", port=tls.port)
        elif not (url.scheme == "http" and url.host == "127.0.0.1" and url.port == local):
            raise httpx.ConnectError(f"the test connector never dials {url}", request=request)
        response = await self._inner.handle_async_request(request)
        response.stream = _CountingStream(response.stream, self._owner)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CountingStream(httpx.AsyncByteStream):
    # An iterator object, not an async generator, so that stopping early leaves nothing
    # suspended for trio to complain about.
    def __init__(self, inner: httpx.AsyncByteStream | Any, owner: LoopbackConnector) -> None:
        self._inner = inner
        self._owner = owner
        self._chunks: AsyncIterator[bytes] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._chunks is None:
            self._chunks = aiter(self._inner)
        chunk = await anext(self._chunks)
        self._owner.received += len(chunk)
        return chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class MapResolver:
    """A `Resolver` from a table; unknown names do not resolve. Records every lookup."""

    def __init__(self, table: Mapping[str, list[str]]) -> None:
        self.table = dict(table)
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])


@pytest.fixture(scope="session")
def live_server() -> Iterator[FeedServer]:
    server = FeedServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_server(
    certificate_authority: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FeedServer]:
    """The feed server over https, with a certificate for `feeds.example` only."""
    pem = tmp_path_factory.mktemp("tls") / "feeds.example.pem"
    certificate_authority.issue_cert("feeds.example").private_key_and_cert_chain_pem.write_to_path(
        str(pem)
    )
    server = FeedServer(certfile=pem)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tls_connector(
    server: FeedServer, tls_server: FeedServer, certificate_authority: trustme.CA
) -> LoopbackConnector:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    certificate_authority.configure_trust(context)
    return LoopbackConnector(server, tls_server, context)


@pytest.fixture
def server(live_server: FeedServer) -> FeedServer:
    live_server.reset()
    return live_server


@pytest.fixture
def connector(server: FeedServer) -> LoopbackConnector:
    return LoopbackConnector(server)


@pytest.fixture
def resolver() -> MapResolver:
    return MapResolver(
        {
            "feeds.example": [PUBLIC_IP],
            "private.example": ["10.0.0.5"],
            "mixed.example": [PUBLIC_IP, "127.0.0.1"],
            "metadata.example": ["169.254.169.254"],
            "mapped.example": ["::ffff:127.0.0.1"],
        }
    )
