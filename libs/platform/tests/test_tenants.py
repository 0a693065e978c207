"""Tenant configuration: the shipped dev file loads, bad files are refused with the bad path named."""

from pathlib import Path

import pytest

from relay_platform.errors import PermanentError
from relay_platform.tenants import ConfigError, S3Integration, hash_api_key, load_tenants

ROOT = Path(__file__).resolve().parents[3]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tenants.yaml"
    path.write_text(text)
    return path


def test_dev_config_has_demo_tenant_with_every_permission() -> None:
    config = load_tenants(ROOT / "config" / "dev.yaml")
    match = config.match_key("demo-key")
    assert match is not None
    assert match.tenant_id == "demo"
    assert match.tenant.recipe_prefix == "999"
    assert set(match.key.permissions) == {"order-tracking", "recipes:write", "recipes:read", "admin"}
    assert config.match_key("wrong-key") is None


def test_keys_are_only_stored_as_hashes() -> None:
    text = (ROOT / "config" / "dev.yaml").read_text()
    assert hash_api_key("demo-key") in text
    assert "demo-key\n" not in text.replace('"demo-key"', "")


def test_recipe_prefix_maps_recipe_to_tenant() -> None:
    config = load_tenants(ROOT / "config" / "dev.yaml")
    found = config.tenant_for_recipe("999-63CHGJokGoxPfSba")
    assert found is not None
    assert found[0] == "demo"
    assert config.tenant_for_recipe("123-abc") is None
    assert config.tenant_for_recipe("no-prefix-dash".replace("-", "")) is None


def test_bad_field_is_named_by_path(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
tenants:
  demo:
    recipe-prefix: "999"
    integrations:
      - id: s3-main
        type: s3
        access-key-secret: ${S3_KEY}
        secret-key-secret: ${S3_SECRET}
""",
    )
    with pytest.raises(ConfigError) as raised:
        load_tenants(path)
    message = str(raised.value)
    assert str(path) in message
    assert "tenants.demo.integrations.0.s3.bucket: Field required" in message


def test_literal_secret_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
tenants:
  demo:
    recipe-prefix: "999"
    integrations:
      - {id: s3-main, type: s3, access-key-secret: AKIAEXAMPLE, secret-key-secret: "${S3_SECRET}", bucket: orders}
""",
    )
    with pytest.raises(ConfigError, match="access-key-secret: Value error, must be an environment reference"):
        load_tenants(path)


def test_secret_reference_resolves_from_environment_only_when_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(
        tmp_path,
        """
tenants:
  demo:
    recipe-prefix: "999"
    integrations:
      - id: s3-main
        type: s3
        access-key-secret: ${S3_KEY}
        secret-key-secret: ${S3_SECRET}
        bucket: orders
        success-notification-list: ops@example.com, lead@example.com
""",
    )
    integration = load_tenants(path).tenants["demo"].integrations[0]
    assert isinstance(integration, S3Integration)
    assert integration.success_notification_list == ("ops@example.com", "lead@example.com")
    assert integration.feeds == ("order",)
    with pytest.raises(PermanentError, match=r"\$\{S3_KEY\} is not set"):
        integration.access_key_secret.resolve()
    monkeypatch.setenv("S3_KEY", "AKIA-from-env")
    resolved = integration.access_key_secret.resolve()
    assert resolved.get_secret_value() == "AKIA-from-env"
    assert "AKIA-from-env" not in repr(integration)


def test_unreadable_and_invalid_yaml_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_tenants(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_tenants(_write(tmp_path, "tenants: [unclosed"))


def test_duplicate_recipe_prefix_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, 'tenants:\n  a: {recipe-prefix: "1"}\n  b: {recipe-prefix: "1"}\n')
    with pytest.raises(ConfigError, match="recipe-prefix '1' used by both"):
        load_tenants(path)


_HEALTH = """
tenants:
  demo:
    recipe-prefix: "999"
    integrations:
      - id: hook
        type: zapier
        hook-url: ${{HOOK_URL}}
        health: {health}
      - id: other
        type: zapier
        hook-url: ${{HOOK_URL}}
"""


def test_destination_health_is_opt_in_with_probe_defaults(tmp_path: Path) -> None:
    tenants = load_tenants(_write(tmp_path, _HEALTH.format(health="{pause-after-failures: 4}")))
    hook, other = tenants.integration("demo", "hook"), tenants.integration("demo", "other")
    assert hook is not None
    assert other is not None
    assert hook.health is not None
    assert (hook.health.pause_after_failures, hook.health.probe_interval_s, hook.health.probe_max_interval_s) == (
        4,
        30.0,
        600.0,
    )
    assert other.health is None  # seed 000's course: retried, then a failure notice


@pytest.mark.parametrize(
    ("health", "named"),
    [
        ("{pause-after-failures: 0}", "health.pause-after-failures"),
        ("{probe-interval-s: 5}", "health.pause-after-failures: Field required"),
        ("{pause-after-failures: 3, probe-interval-s: 0}", "health.probe-interval-s"),
        ("{pause-after-failures: 3, probe-interval-s: 60, probe-max-interval-s: 10}", "probe-max-interval-s"),
        ("{pause-after-failures: 3, probe-interval-s: .nan}", "health.probe-interval-s"),
        ("{pause-after-failures: 3, pause-after: 2}", "health.pause-after"),
    ],
)
def test_a_bad_health_policy_is_refused_naming_the_setting(tmp_path: Path, health: str, named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_tenants(_write(tmp_path, _HEALTH.format(health=health)))
    assert named in str(raised.value)
