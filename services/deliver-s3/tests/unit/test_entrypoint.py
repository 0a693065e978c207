"""Start-up: settings from DELIVER_S3_* variables; a bad tenant file stops the process with the message."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay_deliver_s3.settings import MIB, Settings
from relay_testing.shared_secrets import LINK_SIGNING_KEY, secrets_env


def test_settings_come_from_the_deliver_s3_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVER_S3_MULTIPART_THRESHOLD_BYTES", str(32 * MIB))
    monkeypatch.setenv("DELIVER_S3_CONCURRENCY", "5")
    monkeypatch.setenv("LINKS_SIGNING_KEY", LINK_SIGNING_KEY)

    settings = Settings()

    assert (settings.uploads.multipart_threshold_bytes, settings.concurrency) == (32 * MIB, 5)


def test_bad_tenant_config_exits_non_zero_with_the_message(tmp_path: Path) -> None:
    bad = tmp_path / "tenants.yaml"
    bad.write_text("tenants:\n  acme:\n    recipe-prefix: '999'\n    integrations:\n      - {id: up, type: s3}\n")
    env = {**os.environ, **secrets_env(), "DELIVER_S3_TENANTS_FILE": str(bad), "DELIVER_S3_LOG_JSON": "false"}

    result = subprocess.run(
        [sys.executable, "-m", "relay_deliver_s3"], env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode != 0
    assert "deliver-s3:" in result.stderr
    assert "invalid tenant config" in result.stderr
    assert "bucket" in result.stderr
