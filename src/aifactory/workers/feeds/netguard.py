"""SSRF-safe fetching: every hop is resolved, vetted, and dialled by the vetted address only.

Workers that fetch addresses supplied by clients (feed URLs, pages to discover feeds on) must
never be turned into a way into the factory's own network. `SafeFetcher` therefore:

1. accepts only `http`/`https` (and `file:` under an explicit root, when the policy allows it),
   refuses credentials in URLs and numeric hosts that are not canonical dotted quads
   (`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`);
2. resolves the host through an injectable `Resolver` and asks the `AddressGuard` about
   *every* address: loopback, private, link-local (`169.254.169.254`), multicast, reserved,
   unspecified and otherwise non-global addresses are refused, including IPv4 embedded in IPv6
   (`::ffff:127.0.0.1`, 6to4, Teredo, NAT64);
3. connects to the vetted IP itself (the request URL carries the IP literal; the `Host` header
   and TLS SNI carry the hostname, through httpx's `sni_hostname` extension), so a second DNS
   answer can never redirect the connection;
4. follows redirects by hand, repeating 1-3 for every hop, up to `max_redirects`;
5. streams the body and stops at `max_bytes` (decoded bytes, so compression bombs stop too),
   all within one overall `timeout_s`.

`SafeFetcher.post` sends under the same rules (the account side's webhooks use it), never
following a redirect; `SafeFetcher.check_url` applies what can be checked without a lookup.

The policy, the address guard, the errors and the fetch values are in
`aifactory.workers.feeds.fetch_policy` (no I/O there); this module is the part that touches the
network and the file system.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Protocol

import anyio
import httpx

from .fetch_policy import (
    AddressGuard,
    FetchError,
    FetchPolicy,
    FetchResult,
    IPAddress,
    ResponseTooLargeError,
    TooManyRedirectsError,
    UnsafeURLError,
    Validators,
    literal_address,
)

# `FetchPolicy` is re-exported: `aifactory.config` takes it from here.
__all__ = [
    "Connector",
    "DirectConnector",
    "FetchPolicy",
    "Resolver",
    "SafeFetcher",
    "SystemResolver",
]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_KEPT_HEADERS = ("content-type", "etag", "last-modified", "cache-control", "expires", "date")


class Resolver(Protocol):
    """Turns a host name into the IP addresses (as strings) a connection could go to."""

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address of `host`. Raises `OSError` when the name does not resolve."""
        ...


class SystemResolver:
    """The system's resolver, through `anyio.getaddrinfo`."""

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every stream-socket address of `host`, in the resolver's order, without repeats.

        Raises `OSError` (`socket.gaierror`) when the name does not resolve.
        """
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Connector(Protocol):
    """Makes the httpx transport one fetch goes through.

    Every request the transport sees has a vetted IP literal as its URL host; the original host
    name is in the `Host` header and, for https, in the `sni_hostname` extension. Tests inject
    a connector that records those addresses and only ever dials 127.0.0.1.
    """

    def __call__(self) -> httpx.AsyncBaseTransport:
        """A fresh transport; the fetch closes it when done."""
        ...


class DirectConnector:
    """The real network: an `httpx.AsyncHTTPTransport` that ignores proxy environment variables
    (a proxy would resolve the name again), never retries on its own and keeps no connection
    alive between requests."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context

    def __call__(self) -> httpx.AsyncBaseTransport:
        """A transport dialling the address in each request URL."""
        if self._ssl_context is None:  # made lazily: loading the CA bundle takes a moment
            self._ssl_context = httpx.create_ssl_context()
        # No keep-alive: a TLS connection checked for one name must not carry a redirect to
        # another name that happens to resolve to the same address.
        return httpx.AsyncHTTPTransport(
            verify=self._ssl_context,
            trust_env=False,
            retries=0,
            limits=httpx.Limits(max_keepalive_connections=0),
        )


def _describe(error: BaseException) -> str:
    # Some backends (trio) wrap TLS errors in exceptions without a message: find the cause.
    found: BaseException | None = error
    for _ in range(10):
        if found is None or str(found):
            break
        found = found.__cause__ or found.__context__
    return str(found) if found is not None and str(found) else type(error).__name__


async def _read_body(response: httpx.Response, limit: int) -> bytes | None:
    """The decoded body, or `None` once it grows past `limit` (the connection is closed)."""
    body = bytearray()
    chunks = response.aiter_bytes()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            break
    else:
        return bytes(body)
    # httpx streams through nested async generators; one left suspended is reported by trio
    # when collected. Closing the connection first makes the rest of them end at once.
    await response.aclose()
    with contextlib.suppress(httpx.HTTPError):
        async for _ in chunks:
            pass
    return None


def _file_path(url: str, root: Path) -> Path:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise UnsafeURLError(f"file: URLs must be local: {url!r}")
    path = Path(urllib.request.url2pathname(parts.path)).resolve()
    if not path.is_relative_to(root.resolve()):
        raise UnsafeURLError(f"{url!r} is outside the allowed file root", details={"url": url})
    return path


def _read_limited(path: Path, limit: int) -> bytes:
    with path.open("rb") as stream:
        return stream.read(limit + 1)


class SafeFetcher:
    """Fetches URLs under a `FetchPolicy` (see the module docstring for the guarantees).

    `resolver` and `connector` are injectable so that tests (and deployments with their own
    DNS or egress) decide where names resolve and what gets dialled; `guard` defaults to the
    policy's `AddressGuard`.
    """

    def __init__(
        self,
        policy: FetchPolicy | None = None,
        *,
        resolver: Resolver | None = None,
        connector: Connector | None = None,
        guard: AddressGuard | None = None,
    ) -> None:
        self.policy = policy or FetchPolicy()
        self._resolver = resolver or SystemResolver()
        self._connector = connector or DirectConnector()
        self._guard = guard or AddressGuard.for_policy(self.policy)

    async def fetch(
        self, url: str, *, validators: Validators | None = None, accept: str = "*/*"
    ) -> FetchResult:
        """GET `url`, following redirects by hand, within the policy's limits.

        With `validators`, sends a conditional GET; a `304` gives `not_modified=True`. Any
        other final status is returned as it is (check `ok`). Raises `UnsafeURLError`,
        `TooManyRedirectsError`, `ResponseTooLargeError` and `FetchError`.
        """
        if url.lower().startswith("file:"):
            return await self._read_file(url)
        async with self._client(url, "fetching") as client:
            return await self._follow(client, url, validators, accept)

    async def post(
        self, url: str, content: bytes, headers: Mapping[str, str] | None = None
    ) -> FetchResult:
        """POST `content` to `url` once, under the same rules as `fetch`: the address vetted
        and dialled by IP, the reply read up to `max_bytes`, everything within `timeout_s`.
        A redirect is never followed (its 3xx is returned as it is). `headers` are sent as
        given, with the policy's `User-Agent` unless they name their own.

        Raises `UnsafeURLError` (before anything is sent), `ResponseTooLargeError` and
        `FetchError`.
        """
        target = self.check_url(url)
        async with self._client(url, "posting to") as client:
            request = await self._pinned_request(client, "POST", target, headers or {}, content)
            response = await client.send(request, stream=True)
            try:
                return await self._result(url, target, response)
            finally:
                await response.aclose()

    def check_url(self, url: str) -> httpx.URL:
        """`url` parsed, if this fetcher could fetch it: an allowed scheme, no credentials,
        a host, and, for a host written as an IP address, one the policy allows. Names are
        not resolved here (a fetch does, and vets every address then).

        Raises `UnsafeURLError`.
        """
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise UnsafeURLError(f"invalid URL {url!r}: {exc}", details={"url": url}) from exc
        host, _ = self._target(parsed)
        literal = literal_address(host)
        if literal is not None:
            self._guard.check(str(literal), host=host)
        return parsed

    @contextlib.asynccontextmanager
    async def _client(self, url: str, doing: str) -> AsyncIterator[httpx.AsyncClient]:
        """A client for one fetch or post, its errors as `FetchError`s, its time bounded."""
        try:
            with anyio.fail_after(self.policy.timeout_s):
                async with httpx.AsyncClient(
                    transport=self._connector(),
                    trust_env=False,
                    follow_redirects=False,
                    timeout=self.policy.timeout_s,
                ) as client:
                    yield client
        except TimeoutError as exc:
            raise FetchError(
                f"{doing} {url} took longer than {self.policy.timeout_s} s",
                details={"url": url, "reason": "timeout"},
            ) from exc
        except httpx.HTTPError as exc:
            raise FetchError(
                f"{doing} {url} failed: {_describe(exc)}",
                details={"url": url, "reason": type(exc).__name__},
            ) from exc

    def _target(self, url: httpx.URL) -> tuple[str, int]:
        if url.scheme not in self.policy.schemes:
            raise UnsafeURLError(
                f"refusing the {url.scheme or 'missing'} scheme: {url}",
                details={"url": str(url), "reason": "scheme"},
            )
        if url.userinfo:
            raise UnsafeURLError(
                "refusing a URL with credentials in it",
                details={"host": url.host, "reason": "credentials"},
            )
        host = url.raw_host.decode("ascii")
        if not host:
            raise UnsafeURLError(f"{url} has no host", details={"url": str(url)})
        return host, url.port or (443 if url.scheme == "https" else 80)

    async def _vet(self, host: str, port: int) -> IPAddress:
        literal = literal_address(host)
        if literal is not None:
            return self._guard.check(str(literal), host=host)
        try:
            addresses = await self._resolver.resolve(host, port)
        except OSError as exc:
            raise FetchError(
                f"{host} does not resolve: {exc}", details={"host": host, "reason": "dns"}
            ) from exc
        if not addresses:
            raise FetchError(f"{host} has no address", details={"host": host, "reason": "dns"})
        # Every address must pass: which one a client would pick is not ours to predict.
        vetted = [self._guard.check(address, host=host) for address in addresses]
        return vetted[0]

    async def _follow(
        self,
        client: httpx.AsyncClient,
        url: str,
        validators: Validators | None,
        accept: str,
    ) -> FetchResult:
        try:
            current = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise UnsafeURLError(f"invalid URL {url!r}: {exc}", details={"url": url}) from exc
        for _hop in range(self.policy.max_redirects + 1):
            headers = {"Accept": accept, **(validators.headers() if validators else {})}
            request = await self._pinned_request(client, "GET", current, headers)
            response = await client.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    try:
                        current = current.join(location)
                    except httpx.InvalidURL as exc:
                        raise UnsafeURLError(f"invalid redirect {location!r}") from exc
                    continue
                return await self._result(url, current, response)
            finally:
                await response.aclose()
        raise TooManyRedirectsError(
            f"{url} redirects more than {self.policy.max_redirects} times",
            details={"url": url, "max_redirects": self.policy.max_redirects},
        )

    async def _pinned_request(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: httpx.URL,
        headers: Mapping[str, str],
        content: bytes | None = None,
    ) -> httpx.Request:
        """A request to `url`'s vetted address, its host name in `Host` and the TLS SNI."""
        host, port = self._target(url)
        address = await self._vet(host, port)
        host_header = f"[{host}]" if ":" in host else host
        if url.port is not None:
            host_header = f"{host_header}:{url.port}"
        return client.build_request(
            method,
            url.copy_with(host=str(address)),
            headers={"User-Agent": self.policy.user_agent, **headers, "Host": host_header},
            content=content,
            extensions={"sni_hostname": host} if url.scheme == "https" else None,
        )

    async def _result(self, url: str, final: httpx.URL, response: httpx.Response) -> FetchResult:
        limit = self.policy.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ResponseTooLargeError(
                f"{final} declares {declared} bytes, over the {limit}-byte limit",
                details={"url": str(final), "limit": limit},
            )
        body = b"" if response.status_code == 304 else await _read_body(response, limit)
        if body is None:
            raise ResponseTooLargeError(
                f"{final} sent more than {limit} bytes; reading stopped",
                details={"url": str(final), "limit": limit},
            )
        headers = {
            name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers
        }
        return FetchResult(
            url=url,
            final_url=str(final),
            status=response.status_code,
            headers=headers,
            body=body,
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            not_modified=response.status_code == 304,
        )

    async def _read_file(self, url: str) -> FetchResult:
        root = self.policy.file_root
        if not self.policy.allow_file or root is None:
            raise UnsafeURLError(
                "file: URLs are not allowed by this fetch policy",
                details={"url": url, "reason": "scheme"},
            )
        path = _file_path(url, root)
        try:
            body = await anyio.to_thread.run_sync(_read_limited, path, self.policy.max_bytes)
        except OSError as exc:
            raise FetchError(f"cannot read {url}: {exc.strerror}", details={"url": url}) from exc
        if len(body) > self.policy.max_bytes:
            raise ResponseTooLargeError(
                f"{url} is larger than {self.policy.max_bytes} bytes",
                details={"url": url, "limit": self.policy.max_bytes},
            )
        return FetchResult(url=url, final_url=url, status=200, headers={}, body=body)
