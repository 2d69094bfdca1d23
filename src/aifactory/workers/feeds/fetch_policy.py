"""The rules of SSRF-safe fetching, without any I/O: what may be fetched, where a connection
may go, what a fetch answers, and how it fails.

`FetchPolicy` says which schemes, files, addresses, sizes and times a fetch may use;
`AddressGuard` and `literal_address` decide whether a host or an IP address may be dialled;
`Validators` and `FetchResult` are the values a fetch takes and gives. They live apart from
`SafeFetcher` (`aifactory.workers.feeds.netguard`), which applies them to the network, so that the
decisions can be read, and tested, without a connection in sight.

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

import ipaddress
import os
import re
from pathlib import Path
from typing import Any

import attrs

from ..._exceptions import BadInputError, TransportError
from ..._version import __version__

__all__ = [
    "AddressGuard",
    "FetchError",
    "FetchPolicy",
    "FetchResult",
    "IPAddress",
    "ResponseTooLargeError",
    "TooManyRedirectsError",
    "UnsafeURLError",
    "Validators",
    "literal_address",
]

#: An IPv4 or IPv6 address, as `ipaddress` parses it.
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

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


def _optional_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


@attrs.frozen
class FetchPolicy:
    """What a `SafeFetcher` may fetch, and how much.

    `schemes` may only name `http` and `https`; `file:` URLs are allowed only with
    `allow_file=True`, and then only for files under `file_root` (a `str` or `os.PathLike`,
    kept as a `Path`; never through a redirect).
    `allow_loopback` and `allow_private` exist for tests and local deployments; link-local
    (cloud metadata), multicast, reserved and unspecified addresses are refused whatever they
    say. `max_bytes` bounds the decoded body: past it the fetch raises `ResponseTooLargeError`
    (nothing truncated is ever returned). `timeout_s` bounds the whole fetch, every hop and
    name lookup included. Raises `BadInputError` for an inconsistent policy.
    """

    schemes: frozenset[str] = frozenset({"http", "https"})
    allow_file: bool = False
    file_root: Path | None = attrs.field(default=None, converter=_optional_path)
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
