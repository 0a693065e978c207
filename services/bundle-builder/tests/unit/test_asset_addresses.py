"""SSRF guard tables: which addresses count as public, numeric host forms, and allow-list entries with ports."""

from __future__ import annotations

import pytest

from relay_bundle_builder.adapters.assets import GuardedResolver, is_public_address, numeric_ipv4
from relay_platform.tenants import parse_asset_host


@pytest.mark.parametrize(
    ("address", "public", "why"),
    [
        # IPv4
        ("93.184.216.34", True, "global unicast"),
        ("8.8.8.8", True, "global unicast"),
        ("0.0.0.0", False, "unspecified"),
        ("0.1.2.3", False, "this network"),
        ("10.1.2.3", False, "private"),
        ("100.64.0.1", False, "CGNAT"),
        ("127.0.0.1", False, "loopback"),
        ("127.255.255.254", False, "loopback"),
        ("169.254.169.254", False, "link-local (cloud metadata)"),
        ("172.16.0.1", False, "private"),
        ("192.0.0.8", False, "IETF protocol assignments"),
        ("192.0.2.1", False, "documentation"),
        ("192.88.99.1", False, "6to4 relay anycast"),
        ("192.168.0.1", False, "private"),
        ("198.18.0.1", False, "benchmarking"),
        ("224.0.0.1", False, "multicast"),
        ("240.0.0.1", False, "reserved"),
        ("255.255.255.255", False, "broadcast"),
        # IPv6, plain
        ("2606:4700::1111", True, "global unicast"),
        ("::", False, "unspecified"),
        ("::1", False, "loopback"),
        ("fe80::1", False, "link-local"),
        ("fe80::1%eth0", False, "link-local with a zone"),
        ("2606:4700::1111%1", False, "any address with a zone"),
        ("fc00::1", False, "unique local"),
        ("fd12:3456::1", False, "unique local"),
        ("fec0::1", False, "site-local"),
        ("ff02::1", False, "multicast"),
        ("ff0e::1", False, "global multicast"),
        ("100::1", False, "discard-only"),
        ("2001:db8::1", False, "documentation"),
        ("3fff::1", False, "documentation"),
        ("5f00::1", False, "SRv6"),
        # IPv4-mapped ::ffff:a.b.c.d: the embedded IPv4 decides
        ("::ffff:127.0.0.1", False, "mapped loopback"),
        ("::ffff:10.0.0.1", False, "mapped private"),
        ("::ffff:169.254.169.254", False, "mapped metadata"),
        ("::ffff:8.8.8.8", True, "mapped public"),
        # IPv4-translated ::ffff:0:a.b.c.d (SIIT)
        ("::ffff:0:127.0.0.1", False, "translated loopback"),
        ("::ffff:0:8.8.8.8", True, "translated public"),
        # IPv4-compatible ::a.b.c.d (deprecated): never
        ("::127.0.0.1", False, "compatible loopback"),
        ("::10.0.0.1", False, "compatible private"),
        ("::8.8.8.8", False, "compatible, even public"),
        # NAT64 well-known prefix 64:ff9b::/96: the embedded IPv4 decides (DNS64 answers public hosts this way)
        ("64:ff9b::127.0.0.1", False, "NAT64 loopback"),
        ("64:ff9b::10.0.0.1", False, "NAT64 private"),
        ("64:ff9b::169.254.169.254", False, "NAT64 metadata"),
        ("64:ff9b::8.8.8.8", True, "NAT64 public"),
        # Local-use NAT64 64:ff9b:1::/48: never
        ("64:ff9b:1::a00:1", False, "local-use NAT64 private"),
        ("64:ff9b:1::808:808", False, "local-use NAT64, even public"),
        # 6to4 2002::/16 (IPv4 in bits 16-48): never
        ("2002:7f00:1::1", False, "6to4 loopback"),
        ("2002:a00:1::1", False, "6to4 private"),
        ("2002:808:808::1", False, "6to4, even public"),
        # Teredo 2001::/32 (server IPv4, client IPv4 obfuscated): never
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False, "Teredo"),
        ("2001:0:7f00:1:0:0:80ff:fffe", False, "Teredo with loopback server and client"),
        # ISATAP interface IDs ...:0:5efe:a.b.c.d / ...:200:5efe:a.b.c.d: a non-public IPv4 is refused
        ("2606:4700::5efe:127.0.0.1", False, "ISATAP loopback"),
        ("2606:4700::5efe:10.0.0.1", False, "ISATAP private"),
        ("2606:4700::200:5efe:192.168.1.1", False, "ISATAP private, u/l bit set"),
        ("2606:4700::5efe:8.8.8.8", True, "ISATAP public under a global prefix"),
    ],
)
def test_which_addresses_are_public(address: str, public: bool, why: str) -> None:
    assert is_public_address(address) is public, why


@pytest.mark.parametrize(
    ("host", "means"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("3232235521", "192.168.0.1"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("134744072", "8.8.8.8"),
        ("127.0.0.1", "127.0.0.1"),
        ("assets.example.com", None),
        ("cdn1.example.com", None),
        ("0x7f.example", None),
    ],
)
def test_numeric_hosts_are_read_as_the_url_standard_reads_them(host: str, means: str | None) -> None:
    result = numeric_ipv4(host)
    assert (str(result) if result is not None else None) == means


@pytest.mark.parametrize("host", ["1.2.3.4.5", "example.123", "256.1.1.1", "1.2.3.256", "4294967296", "08", "0xg.1"])
def test_hosts_ending_in_a_number_that_are_no_address_are_invalid(host: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        numeric_ipv4(host)


@pytest.mark.parametrize(
    ("entry", "url_host", "port", "scheme", "allowed"),
    [
        # A bare host: only the scheme's default port.
        ("assets.internal", "assets.internal", 80, "http", True),
        ("assets.internal", "assets.internal", 443, "https", True),
        ("assets.internal", "assets.internal", 443, "http", False),
        ("assets.internal", "assets.internal", 8080, "http", False),
        ("assets.internal", "assets.internal", 22, "http", False),
        ("ASSETS.internal", "assets.internal", 80, "http", True),
        # host:port: exactly that port, whatever the scheme.
        ("assets.internal:8443", "assets.internal", 8443, "https", True),
        ("assets.internal:8443", "assets.internal", 8443, "http", True),
        ("assets.internal:8443", "assets.internal", 443, "https", False),
        # host:*: every port.
        ("127.0.0.1:*", "127.0.0.1", 31337, "http", True),
        ("127.0.0.1:*", "127.0.0.2", 31337, "http", False),
        # IPv6 in brackets, compared in canonical form.
        ("[fd00::1]:8080", "fd00::1", 8080, "http", True),
        ("[FD00:0::1]", "fd00::1", 80, "http", True),
        ("[fd00::1]:8080", "fd00::1", 80, "http", False),
        # Another host never matches.
        ("assets.internal", "assets.internal.evil.example", 80, "http", False),
    ],
)
def test_allow_list_entries_honour_ports(entry: str, url_host: str, port: int, scheme: str, allowed: bool) -> None:
    assert parse_asset_host(entry).allows(url_host, port, scheme) is allowed


async def test_the_resolver_refuses_a_name_resolving_to_loopback_outside_a_fetch() -> None:
    resolver = GuardedResolver()
    try:
        with pytest.raises(OSError, match="refused non-public address"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()
