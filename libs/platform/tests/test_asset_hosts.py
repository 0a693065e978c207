"""``allowed-asset-hosts`` entries: parsed into canonical form at load time, ports honoured, bad entries refused."""

from pathlib import Path

import pytest

from relay_platform.tenants import ConfigError, load_tenants, parse_asset_host


def _tenants(tmp_path: Path, hosts: str) -> Path:
    path = tmp_path / "tenants.yaml"
    path.write_text(f'tenants:\n  t:\n    recipe-prefix: "100"\n    allowed-asset-hosts: {hosts}\n')
    return path


def test_entries_are_stored_in_canonical_form(tmp_path: Path) -> None:
    hosts = '["Assets.Internal", "assets.internal:8443", "10.0.0.5:*", "[FD00:0::1]:8080", "fd00::2", "h:0080"]'
    tenant = load_tenants(_tenants(tmp_path, hosts)).tenants["t"]
    assert tenant.allowed_asset_hosts == (
        "assets.internal",
        "assets.internal:8443",
        "10.0.0.5:*",
        "[fd00::1]:8080",
        "[fd00::2]",
        "h:80",
    )


@pytest.mark.parametrize(
    "entry",
    [
        "http://assets.internal",
        "assets.internal/path",
        "user@assets.internal",
        "assets.internal:0",
        "assets.internal:65536",
        "assets.internal:http",
        "assets.internal:",
        "[not-v6]:80",
        "[fe80::1%eth0]:80",
        "fd00::1:8080:",
        "bad host",
        "",
    ],
)
def test_a_bad_entry_stops_the_load_naming_it(tmp_path: Path, entry: str) -> None:
    with pytest.raises(ConfigError, match=r"tenants\.t\.allowed-asset-hosts"):
        load_tenants(_tenants(tmp_path, f'["{entry}"]'))
    with pytest.raises(ValueError, match=r"."):
        parse_asset_host(entry)


def test_a_bare_host_allows_only_the_default_port_of_the_urls_scheme() -> None:
    entry = parse_asset_host("assets.internal")
    assert entry.allows("assets.internal", 80, "http")
    assert entry.allows("assets.internal", 443, "https")
    assert not entry.allows("assets.internal", 8080, "http")
    assert not entry.allows("assets.internal", 80, "https")
