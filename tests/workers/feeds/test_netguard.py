"""SSRF guard and safe fetching, against a real local server; nothing leaves 127.0.0.1."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
import pytest

from aifactory._exceptions import BadInputError, TransportError, error_class_for_code
from aifactory.workers.feeds.fetch_policy import (
    AddressGuard,
    FetchError,
    FetchPolicy,
    IPAddress,
    ResponseTooLargeError,
    TooManyRedirectsError,
    UnsafeURLError,
    literal_address,
)
from aifactory.workers.feeds.netguard import SafeFetcher, SystemResolver

from .conftest import (
    BIG,
    DATA,
    LAST_MODIFIED,
    PUBLIC_IP,
    Dial,
    FeedServer,
    LoopbackConnector,
    MapResolver,
)

LOOPBACK_OK = FetchPolicy(allow_loopback=True)

REFUSED = {
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "::1": "loopback",
    "10.0.0.1": "private",
    "172.16.5.4": "private",
    "192.168.1.1": "private",
    "100.64.0.1": "private",  # shared address space (carrier-grade NAT)
    "192.0.2.1": "private",  # documentation
    "fc00::1": "private",
    "fec0::1": "private",  # deprecated site-local
    "169.254.169.254": "link-local",  # cloud metadata
    "fe80::1": "link-local",
    "0.0.0.0": "unspecified",  # noqa: S104
    "0.1.2.3": "unspecified",
    "::": "unspecified",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:169.254.169.254": "link-local",
    "::ffff:10.0.0.1": "private",
    "::7f00:1": "loopback",  # IPv4-compatible
    "2002:7f00:1::1": "loopback",  # 6to4 around 127.0.0.1
    "2002:a9fe:a9fe::1": "link-local",  # 6to4 around 169.254.169.254
    "2001:0:4136:e378:8000:63bf:80ff:fffe": "loopback",  # Teredo, client 127.0.0.1
    "64:ff9b::a9fe:a9fe": "link-local",  # NAT64 around 169.254.169.254
}


@pytest.mark.parametrize(("address", "reason"), sorted(REFUSED.items()))
def test_guard_refuses_addresses_that_are_not_globally_routable(address: str, reason: str) -> None:
    with pytest.raises(UnsafeURLError) as caught:
        AddressGuard().check(address, host="h.example")
    assert caught.value.details["reason"].startswith(reason)
    assert caught.value.details["host"] == "h.example"


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_guard_allows_global_addresses(address: str) -> None:
    assert AddressGuard().check(address) == ipaddress.ip_address(address)


def test_opting_in_to_loopback_or_private_never_opens_metadata_or_unspecified() -> None:
    lenient = AddressGuard(allow_loopback=True, allow_private=True)
    for address in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3", "fd00::5"]:
        assert lenient.refusal(ipaddress.ip_address(address)) is None
    for address in ["169.254.169.254", "fe80::1", "0.0.0.0", "::", "224.0.0.1"]:  # noqa: S104
        assert lenient.refusal(ipaddress.ip_address(address)) is not None
    assert AddressGuard(allow_loopback=True).refusal(ipaddress.ip_address("10.0.0.1"))
    assert AddressGuard(allow_private=True).refusal(ipaddress.ip_address("127.0.0.1"))


@pytest.mark.parametrize(
    "host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.0.0.1", "1.2.3.4.", "a.123"]
)
def test_non_canonical_numeric_hosts_are_refused(host: str) -> None:
    with pytest.raises(UnsafeURLError, match="non-canonical numeric host"):
        literal_address(host)


def test_literal_addresses_and_names() -> None:
    assert literal_address("127.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("::ffff:127.0.0.1") == ipaddress.ip_address("::ffff:127.0.0.1")
    assert literal_address("feeds.example") is None
    assert literal_address("1e100.net") is None


def test_policy_is_checked() -> None:
    with pytest.raises(BadInputError, match="file_root"):
        FetchPolicy(allow_file=True)
    with pytest.raises(BadInputError, match="schemes"):
        FetchPolicy(schemes=frozenset({"http", "ftp"}))
    with pytest.raises(BadInputError, match="max_bytes"):
        FetchPolicy(max_bytes=0)
    with pytest.raises(BadInputError, match="max_redirects"):
        FetchPolicy(max_redirects=-1)


def test_errors_join_the_tree_with_their_codes() -> None:
    assert issubclass(UnsafeURLError, BadInputError)
    assert issubclass(ResponseTooLargeError, FetchError)
    assert issubclass(TooManyRedirectsError, FetchError)
    assert issubclass(FetchError, TransportError)
    for cls in (UnsafeURLError, FetchError, ResponseTooLargeError, TooManyRedirectsError):
        assert error_class_for_code(cls.code) is cls


def httpx_url(base: str, **params: str) -> str:
    return str(httpx.URL(base, params=params))


def fetcher(
    connector: LoopbackConnector, resolver: MapResolver, policy: FetchPolicy | None = None
) -> SafeFetcher:
    return SafeFetcher(policy, resolver=resolver, connector=connector)


@pytest.mark.anyio
async def test_fetches_from_loopback_only_when_the_policy_allows_it(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver
) -> None:
    url = server.url("/feeds/rss2.xml")
    result = await fetcher(connector, resolver, LOOPBACK_OK).fetch(url)
    assert (result.status, result.ok, result.url, result.final_url) == (200, True, url, url)
    assert result.body == (DATA / "rss2.xml").read_bytes()
    assert result.media_type == "application/rss+xml"
    assert result.last_modified == LAST_MODIFIED
    assert result.etag is not None
    assert connector.addresses == ["127.0.0.1"]

    with pytest.raises(UnsafeURLError, match="loopback"):
        await fetcher(connector, resolver).fetch(url)
    assert connector.addresses == ["127.0.0.1"]  # the refused fetch dialled nothing
    assert server.hits["/feeds/rss2.xml"] == 1


@pytest.mark.anyio
async def test_a_resolved_name_is_dialled_by_its_vetted_address_with_its_own_host_header(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver
) -> None:
    result = await fetcher(connector, resolver).fetch("http://feeds.example/feeds/atom.xml")
    assert result.ok
    assert result.final_url == "http://feeds.example/feeds/atom.xml"
    assert connector.dials[0].address == PUBLIC_IP
    assert connector.dials[0].host == "feeds.example"
    assert resolver.lookups == ["feeds.example"]
    path, headers = server.headers[0]
    assert (path, headers["host"]) == ("/feeds/atom.xml", "feeds.example")
    assert headers["user-agent"].startswith("aifactory/")


@pytest.mark.anyio
async def test_https_is_pinned_to_the_vetted_address_with_sni_and_host_of_the_name(
    connector: LoopbackConnector, resolver: MapResolver
) -> None:
    # The test connector refuses TLS; what matters is what the fetcher asked it to dial.
    with pytest.raises(FetchError) as caught:
        await fetcher(connector, resolver).fetch("https://feeds.example:8443/feed")
    assert not isinstance(caught.value, UnsafeURLError)
    [dial] = connector.dials
    assert (dial.address, dial.port, dial.host, dial.sni) == (
        PUBLIC_IP,
        8443,
        "feeds.example:8443",
        "feeds.example",
    )


@pytest.mark.anyio
async def test_https_to_the_pinned_address_verifies_the_certificate_of_the_name(
    tls_connector: LoopbackConnector, resolver: MapResolver
) -> None:
    resolver.table["other.example"] = [PUBLIC_IP]
    safe = SafeFetcher(resolver=resolver, connector=tls_connector)
    result = await safe.fetch("https://feeds.example/feeds/atom.xml")
    assert result.body == (DATA / "atom.xml").read_bytes()
    assert tls_connector.dials == [Dial(PUBLIC_IP, None, "feeds.example", "feeds.example")]
    # Same address, another name: the certificate (for feeds.example only) must not pass.
    with pytest.raises(FetchError) as caught:
        await safe.fetch("https://other.example/feeds/atom.xml")
    assert "certificate" in str(caught.value).lower()
    assert tls_connector.dials[-1].sni == "other.example"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/feeds/rss2.xml",
        "http://169.254.169.254/latest/meta-data",
        "http://metadata.example/latest/meta-data",
        "http://2130706433:{port}/feeds/rss2.xml",
        "http://0x7f000001:{port}/feeds/rss2.xml",
        "http://[::ffff:127.0.0.1]:{port}/feeds/rss2.xml",
        "http://[::1]:{port}/feeds/rss2.xml",
        "http://localhost.:{port}/feeds/rss2.xml",
        "http://mapped.example:{port}/feeds/rss2.xml",
        "file:///etc/passwd",
        "gopher://feeds.example/",
    ],
)
async def test_redirects_to_unsafe_places_are_refused_before_dialling(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver, target: str
) -> None:
    location = target.format(port=server.port)
    resolver.table["localhost."] = ["127.0.0.1"]
    with pytest.raises(UnsafeURLError):
        await fetcher(connector, resolver).fetch(
            httpx_url("http://feeds.example/redirect", to=location)
        )
    assert connector.addresses == [PUBLIC_IP]  # the first hop only
    assert server.hits["/redirect"] == 1
    assert server.hits["/feeds/rss2.xml"] == 0


@pytest.mark.anyio
async def test_metadata_redirect_is_refused_even_with_loopback_and_private_allowed(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver
) -> None:
    lenient = FetchPolicy(allow_loopback=True, allow_private=True)
    url = httpx_url(server.url("/redirect"), to="http://169.254.169.254/latest/meta-data")
    with pytest.raises(UnsafeURLError, match="link-local"):
        await fetcher(connector, resolver, lenient).fetch(url)
    assert connector.addresses == ["127.0.0.1"]


class _NoGuard(AddressGuard):
    def refusal(self, address: IPAddress) -> str | None:
        return None


@pytest.mark.anyio
async def test_with_the_guard_broken_the_injected_connector_still_never_leaves_loopback(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver
) -> None:
    broken = SafeFetcher(resolver=resolver, connector=connector, guard=_NoGuard())
    url = httpx_url("http://feeds.example/redirect", to="http://169.254.169.254/latest/meta-data")
    with pytest.raises(FetchError):
        await broken.fetch(url)
    assert connector.addresses == [PUBLIC_IP, "169.254.169.254"]  # recorded, refused, not dialled


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("host", "reason"),
    [("private.example", "private"), ("mixed.example", "loopback"), ("metadata.example", "link")],
)
async def test_names_resolving_to_unsafe_addresses_are_refused(
    connector: LoopbackConnector, resolver: MapResolver, host: str, reason: str
) -> None:
    with pytest.raises(UnsafeURLError, match=reason):
        await fetcher(connector, resolver).fetch(f"http://{host}/feed")
    assert connector.dials == []


@pytest.mark.anyio
async def test_the_system_resolver_sends_localhost_to_loopback_which_is_refused(
    connector: LoopbackConnector,
) -> None:
    assert "127.0.0.1" in await SystemResolver().resolve("localhost", 80) or "::1" in (
        await SystemResolver().resolve("localhost", 80)
    )
    with pytest.raises(UnsafeURLError, match="loopback"):
        await SafeFetcher(connector=connector).fetch("http://localhost/feed")
    assert connector.dials == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "ftp://feeds.example/feed.xml",
        "file:///etc/passwd",
        "data:text/plain,hello",
        "javascript:alert(1)",
        "gopher://feeds.example/",
        "http://user:secret@feeds.example/feed",
        "http:///no-host",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
async def test_unsafe_urls_are_refused_without_resolving_or_dialling(
    connector: LoopbackConnector, resolver: MapResolver, url: str
) -> None:
    with pytest.raises(UnsafeURLError):
        await fetcher(connector, resolver).fetch(url)
    assert connector.dials == []
    assert resolver.lookups == []


@pytest.mark.anyio
async def test_unknown_names_fail_to_fetch(
    connector: LoopbackConnector, resolver: MapResolver
) -> None:
    with pytest.raises(FetchError, match="does not resolve") as caught:
        await fetcher(connector, resolver).fetch("http://nowhere.example/feed")
    assert caught.value.details["reason"] == "dns"
    assert connector.dials == []


@pytest.mark.anyio
async def test_redirects_are_followed_by_hand_up_to_the_limit(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver
) -> None:
    result = await fetcher(connector, resolver).fetch("http://feeds.example/hop/5")
    assert (result.body, result.final_url) == (b"arrived", "http://feeds.example/hop/0")
    assert connector.addresses == [PUBLIC_IP] * 6
    assert resolver.lookups == ["feeds.example"] * 6  # every hop is resolved and vetted again

    with pytest.raises(TooManyRedirectsError):
        await fetcher(connector, resolver).fetch("http://feeds.example/hop/6")
    with pytest.raises(TooManyRedirectsError):
        await fetcher(connector, resolver, FetchPolicy(max_redirects=0)).fetch(
            "http://feeds.example/hop/1"
        )


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/big", "/big-declared", "/bomb"])
async def test_a_20_mb_body_is_cut_off(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver, path: str
) -> None:
    with pytest.raises(ResponseTooLargeError) as caught:
        await fetcher(connector, resolver).fetch(f"http://feeds.example{path}")
    assert caught.value.details["limit"] == 5 * 1024 * 1024
    assert connector.received <= 6 * 1024 * 1024 < BIG  # reading stopped near the limit


@pytest.mark.anyio
async def test_conditional_get_turns_a_304_into_not_modified(
    server: FeedServer, connector: LoopbackConnector, resolver: MapResolver
) -> None:
    safe = fetcher(connector, resolver)
    first = await safe.fetch("http://feeds.example/feeds/rss2.xml")
    again = await safe.fetch("http://feeds.example/feeds/rss2.xml", validators=first.validators)
    assert (again.status, again.not_modified, again.body) == (304, True, b"")
    assert server.not_modified["/feeds/rss2.xml"] == 1
    assert server.headers[1][1]["if-none-match"] == first.etag
    assert server.headers[1][1]["if-modified-since"] == LAST_MODIFIED


@pytest.mark.anyio
async def test_other_statuses_are_returned_for_the_caller_to_judge(
    connector: LoopbackConnector, resolver: MapResolver
) -> None:
    result = await fetcher(connector, resolver).fetch("http://feeds.example/no/such/feed")
    assert (result.status, result.ok, result.body) == (404, False, b"not here")


@pytest.mark.anyio
async def test_the_whole_fetch_has_one_time_limit(
    connector: LoopbackConnector, resolver: MapResolver
) -> None:
    with pytest.raises(FetchError, match=r"longer than 0\.3 s") as caught:
        await fetcher(connector, resolver, FetchPolicy(timeout_s=0.3)).fetch(
            "http://feeds.example/slow"
        )
    assert caught.value.details["reason"] == "timeout"


@pytest.mark.anyio
async def test_file_urls_only_when_allowed_and_only_under_the_root(tmp_path: Path) -> None:
    feed = DATA / "rss2.xml"
    with pytest.raises(UnsafeURLError, match="not allowed"):
        await SafeFetcher().fetch(feed.as_uri())
    local = SafeFetcher(FetchPolicy(allow_file=True, file_root=DATA))
    result = await local.fetch(feed.as_uri())
    assert (result.status, result.body) == (200, feed.read_bytes())
    with pytest.raises(UnsafeURLError, match="outside"):
        await local.fetch((DATA.parent / "conftest.py").as_uri())
    with pytest.raises(UnsafeURLError, match="outside"):
        await local.fetch(f"file://{DATA}/../conftest.py")
    (tmp_path / "escape").symlink_to(DATA.parent / "conftest.py")
    with pytest.raises(UnsafeURLError, match="outside"):
        await SafeFetcher(FetchPolicy(allow_file=True, file_root=tmp_path)).fetch(
            (tmp_path / "escape").as_uri()
        )
    with pytest.raises(FetchError, match="cannot read"):
        await local.fetch((DATA / "absent.xml").as_uri())
    with pytest.raises(ResponseTooLargeError):
        await SafeFetcher(FetchPolicy(allow_file=True, file_root=DATA, max_bytes=10)).fetch(
            feed.as_uri()
        )
