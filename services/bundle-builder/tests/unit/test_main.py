"""Start-up: a bad tenant file stops the process with a message naming the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_bad_tenant_config_exits_non_zero_with_the_message(tmp_path: Path) -> None:
    bad = tmp_path / "tenants.yaml"
    bad.write_text("tenants:\n  demo:\n    recipe-prefix: 'no spaces allowed'\n")
    env = {**os.environ, "BUNDLE_BUILDER_TENANTS_FILE": str(bad), "BUNDLE_BUILDER_LOG_JSON": "false"}
    result = subprocess.run(
        [sys.executable, "-m", "relay_bundle_builder"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "invalid tenant config" in result.stderr
    assert "recipe-prefix" in result.stderr
