"""Start-up: settings from DELIVER_AZURE_BLOB_* variables; a bad tenant file stops the process with the message."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay_deliver_azure_blob.settings import Settings
from relay_testing.shared_secrets import LINK_SIGNING_KEY, secrets_env


def test_settings_come_from_the_deliver_azure_blob_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVER_AZURE_BLOB_UPLOAD_CONCURRENCY", "8")
    monkeypatch.setenv("DELIVER_AZURE_BLOB_CONCURRENCY", "5")
    monkeypatch.setenv("LINKS_SIGNING_KEY", LINK_SIGNING_KEY)

    settings = Settings()

    assert (settings.uploads.upload_concurrency, settings.concurrency) == (8, 5)


def test_bad_tenant_config_exits_non_zero_with_the_message(tmp_path: Path) -> None:
    bad = tmp_path / "tenants.yaml"
    bad.write_text(
        "tenants:\n  acme:\n    recipe-prefix: '999'\n    integrations:\n"
        "      - {id: up, type: azure-blob, connection-string-secure: 'literal-secret', container: orders}\n"
    )
    env = {
        **os.environ,
        **secrets_env(),
        "DELIVER_AZURE_BLOB_TENANTS_FILE": str(bad),
        "DELIVER_AZURE_BLOB_LOG_JSON": "false",
    }

    result = subprocess.run(
        [sys.executable, "-m", "relay_deliver_azure_blob"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert "deliver-azure-blob:" in result.stderr
    assert "connection-string-secure" in result.stderr
    assert "environment reference" in result.stderr
