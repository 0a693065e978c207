"""`python -m relay_deliver_zapier` refuses to start on a bad tenant file, saying what is wrong."""

import subprocess
import sys
from pathlib import Path

import pytest

from relay_testing.shared_secrets import secrets_env


def test_bad_tenant_config_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "tenants.yaml"
    bad.write_text("tenants:\n  acme:\n    recipe-prefix: 'not valid!'\n")
    env = {
        **secrets_env(),
        "DELIVER_ZAPIER_TENANTS_FILE": str(bad),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "PATH": "/usr/bin:/bin",
    }

    result = subprocess.run(
        [sys.executable, "-m", "relay_deliver_zapier"], capture_output=True, text=True, env=env, timeout=60, check=False
    )

    assert result.returncode != 0
    assert "invalid tenant config" in result.stderr
    assert "recipe-prefix" in result.stderr


@pytest.mark.parametrize("key", [None, "dev-only-signing-key-change-me", "too-short-to-sign-links"])
def test_missing_or_weak_link_signing_key_stops_start_up_naming_the_variable(tmp_path: Path, key: str | None) -> None:
    env = {"DELIVER_ZAPIER_TENANTS_FILE": str(tmp_path / "unused.yaml"), "PATH": "/usr/bin:/bin"}
    if key is not None:
        env["LINKS_SIGNING_KEY"] = key

    result = subprocess.run(
        [sys.executable, "-m", "relay_deliver_zapier"], capture_output=True, text=True, env=env, timeout=60, check=False
    )

    assert result.returncode != 0
    assert "deliver-zapier: invalid settings" in result.stderr
    assert "LINKS_SIGNING_KEY" in result.stderr
    if key is not None:
        assert key not in result.stderr
