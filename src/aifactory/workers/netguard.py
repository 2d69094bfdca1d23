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

Errors, added to the tree of `aifactory._exceptions`:

```
BadInputError
└── UnsafeURLError           400  the URL or a redirect points where we never connect
TransportError
└── FetchError               503  the fetch failed (network, timeout, unreadable file)
    ├── TooManyRedirectsError     more than `max_redirects` hops
    └── ResponseTooLargeError     the body exceeds `max_bytes`; reading stopped there
```
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import ssl
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Protocol

import anyio
import attrs
import httpx

from .._exceptions import BadInputError, TransportError
from .._version import __version__

__all__ = [
    "AddressGuard",
    "Connector",
    "DirectConnector",
    "FetchError",
    "FetchPolicy",
    "FetchResult",
    "IPAddress",
    "Resolver",
    "ResponseTooLargeError",
    "SafeFetcher",
    "SystemResolver",
    "TooManyRedirectsError",
    "UnsafeURLError",
    "Validators",
    "literal_address",
]

#: An IPv4 or IPv6 address, as `ipaddress` parses it.
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_KEPT_HEADERS = ("content-type", "etag", "last-modified", "cache-control", "expires", "date")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")


class UnsafeURLError(BadInputError):
    """A URL, or a redirect, that the fetch policy refuses: wrong scheme, credentials, a
    non-canonical numeric host, or an address that is not globally routable."""

    code = "unsafe_url"


class FetchError(TransportError):
    """A fetch failed: the host did not resolve or answer, the time ran out, a file was
    unreadable."""

    code = "fetch_failed"


class TooManyRedirectsError(FetchError):
    """The redirect chain is longer than the policy's `max_redirects`."""

    code = "too_many_redirects"


class ResponseTooLargeError(FetchError):
    """The body is larger than the policy's `max_bytes`; reading stopped at the limit."""

    code = "response_too_large"


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise BadInputError(f"{attribute.name} must be positive, not {value}")


@attrs.frozen
class FetchPolicy:
    """What a `SafeFetcher` may fetch, and how much.

    `schemes` may only name `http` and `https`; `file:` URLs are allowed only with
    `allow_file=True`, and then only for files under `file_root` (never through a redirect).
    `allow_loopback` and `allow_private` exist for tests and local deployments; link-local
    (cloud metadata), multicast, reserved and unspecified addresses are refused whatever they
    say. `max_bytes` bounds the decoded body: past it the fetch raises `ResponseTooLargeError`
    (nothing truncated is ever returned). `timeout_s` bounds the whole fetch, every hop and
    name lookup included. Raises `BadInputError` for an inconsistent policy.
    """

    schemes: frozenset[str] = frozenset({"http", "https"})
    allow_file: bool = False
    file_root: Path | None = None
    max_bytes: int = attrs.field(default=5 * 1024 * 1024, validator=_positive)
    timeout_s: float = attrs.field(default=10.0, validator=_positive)
    max_redirects: int = 5
    allow_loopback: bool = False
    allow_private: bool = False
    user_agent: str = f"aifactory/{__version__} (+feed fetcher)"

    def __attrs_post_init__(self) -> None:
        if not self.schemes or not self.schemes <= {"http", "https"}:
            raise BadInputError("schemes must be a non-empty subset of {'http', 'https'}")
        if self.allow_file and self.file_root is None:
            raise BadInputError("allow_file needs an explicit file_root")
        if self.max_redirects < 0:
            raise BadInputError("max_redirects must be zero or more")


@attrs.frozen
class Validators:
    """Conditional GET validators remembered from an earlier response."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        """The `If-None-Match` / `If-Modified-Since` headers these validators give."""
        found = {"If-None-Match": self.etag, "If-Modified-Since": self.last_modified}
        return {name: value for name, value in found.items() if value}


@attrs.frozen
class FetchResult:
    """The outcome of a fetch that reached a final (non-redirect) answer.

    `headers` keeps only a few response headers (content type, validators, caching), named in
    lower case. On `304 Not Modified`, `not_modified` is true and `body` is empty.
    """

    url: str
    final_url: str
    status: int
    headers: dict[str, str]
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return 200 <= self.status < 300

    @property
    def media_type(self) -> str:
        """The content type without parameters, lower case (`""` when not given)."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def validators(self) -> Validators:
        """The validators to send next time for a conditional GET."""
        return Validators(self.etag, self.last_modified)


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


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@attrs.frozen
class AddressGuard:
    """Decides whether a connection may go to an IP address.

    Refused always: unspecified (`0.0.0.0/8`, `::`), link-local (`169.254.0.0/16` with the
    cloud metadata service, `fe80::/10`), multicast and reserved addresses. Refused unless
    allowed: loopback (`allow_loopback`) and any other address that is not globally routable
    (`allow_private`: RFC 1918, unique-local, shared address space, ...). IPv6 addresses that
    embed an IPv4 address (`::ffff:a.b.c.d`, 6to4, Teredo, NAT64, IPv4-compatible) are judged
    by the embedded address too.
    """

    allow_loopback: bool = False
    allow_private: bool = False

    @classmethod
    def for_policy(cls, policy: FetchPolicy) -> AddressGuard:
        """The guard a fetch `policy` asks for."""
        return cls(allow_loopback=policy.allow_loopback, allow_private=policy.allow_private)

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` is refused, or `None` when a connection may go there."""
        if isinstance(address, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(address)
            if embedded is not None:
                reason = self.refusal(embedded)
                if reason is not None:
                    return f"{reason} (IPv4 {embedded} in IPv6)"
                if address.ipv4_mapped is not None:
                    return None  # `::ffff:a.b.c.d` is a.b.c.d, nothing more
        elif address in _THIS_NETWORK:
            return "unspecified"
        if address.is_unspecified:
            return "unspecified"
        if address.is_loopback:
            return None if self.allow_loopback else "loopback"
        if address.is_link_local:
            return "link-local"
        if address.is_multicast:
            return "multicast"
        if address.is_reserved:
            return "reserved"
        site_local = isinstance(address, ipaddress.IPv6Address) and address.is_site_local
        if site_local or address.is_private or not address.is_global:
            return None if self.allow_private else "private (not globally routable)"
        return None

    def check(self, address: str, *, host: str = "") -> IPAddress:
        """The parsed `address` if a connection may go there.

        Raises `UnsafeURLError` naming the address, the host it came from and the reason.
        """
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError as exc:
            raise UnsafeURLError(
                f"{address!r} is not an IP address", details={"address": address}
            ) from exc
        reason = self.refusal(parsed)
        if reason is not None:
            raise UnsafeURLError(
                f"refusing to connect to {host or address} ({parsed}): {reason}",
                details={"host": host, "address": str(parsed), "reason": reason},
            )
        return parsed


def literal_address(host: str) -> IPAddress | None:
    """The IP address `host` spells, or `None` for a host name that needs resolving.

    Only canonical forms count as addresses: a dotted quad without leading zeros, or an IPv6
    literal. A host whose last label is numeric in any other way (`2130706433`,
    `0x7f000001`, `0177.0.0.1`, `127.1`) would be read as an address by some resolvers and not
    by others, so it is refused. Raises `UnsafeURLError`.
    """
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.replace("%25", "%"))
        except ValueError as exc:
            raise UnsafeURLError(f"{host!r} is not a valid IPv6 address") from exc
    labels = [label for label in host.split(".") if label]
    if not labels or not _NUMERIC_LABEL.fullmatch(labels[-1]):
        return None
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        address = None
    if address is None or str(address) != host:
        raise UnsafeURLError(
            f"refusing the non-canonical numeric host {host!r}",
            details={"host": host, "reason": "non-canonical numeric host"},
        )
    return address


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
        try:
            with anyio.fail_after(self.policy.timeout_s):
                async with httpx.AsyncClient(
                    transport=self._connector(),
                    trust_env=False,
                    follow_redirects=False,
                    timeout=self.policy.timeout_s,
                ) as client:
                    return await self._follow(client, url, validators, accept)
        except TimeoutError as exc:
            raise FetchError(
                f"fetching {url} took longer than {self.policy.timeout_s} s",
                details={"url": url, "reason": "timeout"},
            ) from exc
        except httpx.HTTPError as exc:
            raise FetchError(
                f"fetching {url} failed: {_describe(exc)}",
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
            host, port = self._target(current)
            address = await self._vet(host, port)
            host_header = f"[{host}]" if ":" in host else host
            if current.port is not None:
                host_header = f"{host_header}:{current.port}"
            request = client.build_request(
                "GET",
                current.copy_with(host=str(address)),
                headers={
                    "Host": host_header,
                    "User-Agent": self.policy.user_agent,
                    "Accept": accept,
                    **(validators.headers() if validators else {}),
                },
                extensions={"sni_hostname": host} if current.scheme == "https" else None,
            )
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
