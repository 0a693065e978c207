"""The pick tickets' pure parts: the per-client token bucket, the byte-bounded LRU, client addresses, ETag matching."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest

from relay_ingest_api.http import originating_address
from relay_ingest_api.ports import RenderedPdf, RenderKey
from relay_ingest_api.ratelimit import RateLimitedError, TokenBuckets
from relay_ingest_api.renders import PdfCache, RenderStats


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_its_burst_then_429_with_the_seconds_until_one_more_fits() -> None:
    clock = Clock()
    limiter = TokenBuckets(per_second=0.5, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("198.51.100.7")
    with pytest.raises(RateLimitedError) as refused:
        limiter.check("198.51.100.7")
    assert refused.value.retry_after_s == 2
    limiter.check("203.0.113.9")  # another client has its own bucket
    clock.now += 2
    limiter.check("198.51.100.7")


def test_idle_clients_are_forgotten_and_the_number_kept_is_capped() -> None:
    clock = Clock()
    limiter = TokenBuckets(per_second=1, burst=2, max_keys=3, clock=clock)
    for n in range(10):
        limiter.check(f"client-{n}")
    assert len(limiter) == 3
    clock.now += 5  # every bucket is full again: remembering them would change nothing
    limiter.check("late")
    assert len(limiter) == 1


def test_the_cache_drops_the_least_recently_used_past_its_bytes() -> None:
    stats = RenderStats()
    cache = PdfCache(4 * 1400, stats)
    keys = [RenderKey.of(f"999-r{n}", b"{}") for n in range(4)]
    for key in keys[:3]:
        cache.put(key, RenderedPdf.of(b"x" * 1000))
    assert cache.get(keys[0]) is not None  # now the most recently used
    cache.put(keys[3], RenderedPdf.of(b"y" * 1000))
    cache.put(RenderKey.of("999-r9", b"{}"), RenderedPdf.of(b"z" * 1000))
    assert cache.size <= cache.max_bytes
    assert cache.get(keys[1]) is None
    assert cache.get(keys[0]) is not None
    assert stats.evictions == 1


def test_a_pdf_over_a_quarter_of_the_cache_is_not_kept() -> None:
    cache = PdfCache(4000, RenderStats())
    key = RenderKey.of("999-big", b"{}")
    cache.put(key, RenderedPdf.of(b"x" * 1000))
    assert cache.get(key) is None
    assert len(cache) == 0


def test_the_key_changes_with_the_stored_bytes() -> None:
    assert RenderKey.of("999-a", b'{"name":"A"}') != RenderKey.of("999-a", b'{"name":"B"}')


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        ("*", True),
        ('"other"', False),
        ('"other", {etag}', True),
        ("W/{etag}", True),
    ],
)
def test_if_none_match_names_the_body(header: str | None, matches: bool) -> None:
    pdf = RenderedPdf.of(b"%PDF-1.4 body")
    assert pdf.etag == f'"{hashlib.sha256(b"%PDF-1.4 body").hexdigest()}"'
    assert pdf.matches(header.format(etag=pdf.etag) if header else header) is matches


PROXY = [ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        ("198.51.100.7", [], [], "198.51.100.7"),
        # Without a trusted proxy the header is anyone's to write: ignored.
        ("198.51.100.7", ["203.0.113.1"], [], "198.51.100.7"),
        ("10.0.0.5", ["203.0.113.1"], [], "10.0.0.5"),
        # Behind a trusted proxy: the nearest entry that is not a trusted proxy itself.
        ("10.0.0.5", ["203.0.113.1"], PROXY, "203.0.113.1"),
        ("10.0.0.5", ["1.1.1.1, 203.0.113.1, 10.0.0.9"], PROXY, "203.0.113.1"),
        ("10.0.0.5", ["1.1.1.1", "203.0.113.1"], PROXY, "203.0.113.1"),
        ("10.0.0.5", ["not-an-address"], PROXY, "10.0.0.5"),
        ("10.0.0.5", [], PROXY, "10.0.0.5"),
        # A trusted network does not make its header believed from elsewhere.
        ("198.51.100.7", ["203.0.113.1"], PROXY, "198.51.100.7"),
        # IPv6 clients count per /64; IPv4-mapped peers as IPv4.
        ("2001:db8:1:2:3:4:5:6", [], [], "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.7", [], [], "198.51.100.7"),
        (None, [], [], "unknown"),
    ],
)
def test_the_client_address(
    peer: str | None,
    forwarded: list[str],
    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    client: str,
) -> None:
    assert originating_address(peer, forwarded, trusted) == client
