"""`python -m relay_deliver_email` refuses to start on a bad tenant file, saying what is wrong."""

import subprocess
import sys
from pathlib import Path

from relay_testing.shared_secrets import secrets_env


def test_bad_tenant_config_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "tenants.yaml"
    bad.write_text("tenants:\n  acme:\n    recipe-prefix: 'not valid!'\n")
    env = {
        **secrets_env(),
        "DELIVER_EMAIL_TENANTS_FILE": str(bad),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "PATH": "/usr/bin:/bin",
    }

    result = subprocess.run(
        [sys.executable, "-m", "relay_deliver_email"], capture_output=True, text=True, env=env, timeout=60, check=False
    )

    assert result.returncode != 0
    assert "invalid tenant config" in result.stderr
    assert "recipe-prefix" in result.stderr
