"""The asset fetcher against a real loopback HTTP server: caps, retries, SSRF refusals, redirects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from relay_bundle_builder.adapters.assets import HttpAssetFetcher, is_public_address, make_session
from relay_bundle_builder.domain import AssetError, AssetUnavailableError
from relay_bundle_builder.settings import AssetFetchSettings

pytestmark = pytest.mark.integration

ALLOW = ("127.0.0.1:*",)
SIZE_CAP = 256 * 1024  # the asset server's large files are twice this


@pytest.fixture(scope="module")
async def fetcher() -> AsyncIterator[HttpAssetFetcher]:
    policy = AssetFetchSettings(timeout_s=0.5, max_bytes=SIZE_CAP, retries=1, retry_wait_s=0.01)
    async with make_session(policy) as session:
        yield HttpAssetFetcher(session, policy)


async def test_allowed_host_asset_is_fetched_with_its_content_type(
    fetcher: HttpAssetFetcher, asset_server: Any
) -> None:
    asset = await fetcher.fetch(asset_server.url("/img/red.png"), label="view front", allowed_hosts=ALLOW)
    assert asset.body.read_bytes().startswith(b"\x89PNG")
    assert asset.content_type.startswith("image/png")


async def test_missing_asset_is_a_permanent_error_naming_the_asset(
    fetcher: HttpAssetFetcher, asset_server: Any
) -> None:
    with pytest.raises(AssetError, match=r"view back PNG preview: not found \(HTTP 404\)"):
        await fetcher.fetch(asset_server.url("/missing.png"), label="view back PNG preview", allowed_hosts=ALLOW)


@pytest.mark.parametrize("path", ["/large.bin", "/streamed-large"])
async def test_oversized_asset_is_refused(fetcher: HttpAssetFetcher, asset_server: Any, path: str) -> None:
    with pytest.raises(AssetError, match="limit"):
        await fetcher.fetch(asset_server.url(path), label="attachment big", allowed_hosts=ALLOW)


async def test_slow_asset_times_out_after_retries(fetcher: HttpAssetFetcher, asset_server: Any) -> None:
    before = asset_server.hits.get("/slow.png", 0)
    with pytest.raises(AssetUnavailableError, match="timed out"):
        await fetcher.fetch(asset_server.url("/slow.png"), label="view slow", allowed_hosts=ALLOW)
    assert asset_server.hits["/slow.png"] - before == 2


async def test_transient_503_is_retried_within_the_attempt(fetcher: HttpAssetFetcher, asset_server: Any) -> None:
    asset = await fetcher.fetch(asset_server.url("/flaky.png"), label="view flaky", allowed_hosts=ALLOW)
    assert asset.body.read_bytes().startswith(b"\x89PNG")
    assert asset_server.hits["/flaky.png"] >= 2


async def test_private_address_is_refused_without_allow_list(fetcher: HttpAssetFetcher, asset_server: Any) -> None:
    before = asset_server.hits.get("/img/red.png", 0)
    with pytest.raises(AssetError, match="refused"):
        await fetcher.fetch(asset_server.url("/img/red.png"), label="view front", allowed_hosts=())
    assert asset_server.hits.get("/img/red.png", 0) == before  # never connected


async def test_redirect_to_a_private_host_is_refused(fetcher: HttpAssetFetcher, asset_server: Any) -> None:
    # 127.0.0.1 is allowed, but the redirect goes to "localhost", which is not on the list.
    with pytest.raises(AssetError, match="refused"):
        await fetcher.fetch(asset_server.url("/redirect-private"), label="view front", allowed_hosts=ALLOW)


async def test_redirect_within_allowed_host_is_followed(fetcher: HttpAssetFetcher, asset_server: Any) -> None:
    asset = await fetcher.fetch(asset_server.url("/redirect-ok"), label="view front", allowed_hosts=ALLOW)
    assert asset.body.read_bytes().startswith(b"\x89PNG")


async def test_non_http_schemes_are_refused(fetcher: HttpAssetFetcher) -> None:
    with pytest.raises(AssetError, match="only http"):
        await fetcher.fetch("file:///etc/passwd", label="attachment x", allowed_hosts=ALLOW)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),
        ("0.0.0.0", False),
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
    ],
)
def test_only_global_unicast_addresses_count_as_public(address: str, public: bool) -> None:
    assert is_public_address(address) is public
