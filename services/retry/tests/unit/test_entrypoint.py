"""`python -m relay_retry` refuses to start on a bad tenant file, naming the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_bad_tenant_config_stops_start_up_with_the_message(tmp_path: Path) -> None:
    bad = tmp_path / "tenants.yaml"
    bad.write_text("tenants:\n  t1:\n    recipe-prefix: '9'\n    integrations:\n      - id: x\n        type: ftp\n")
    env = dict(os.environ, RELAY_TENANTS_FILE=str(bad), RELAY_LOG_FORMAT="text")
    result = subprocess.run(
        [sys.executable, "-m", "relay_retry"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "retry:" in result.stderr
    assert str(bad) in result.stderr
    assert "integrations.0" in result.stderr
