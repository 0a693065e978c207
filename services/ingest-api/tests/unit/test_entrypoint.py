"""``python -m relay_ingest_api`` refuses a bad tenant file with the ConfigError message and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_bad_tenant_file_exits_non_zero_naming_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "tenants.yaml"
    bad.write_text("tenants:\n  demo:\n    recipe-prefix: 'not valid!'\n", encoding="utf-8")
    env = os.environ | {"INGEST_API_TENANTS_FILE": str(bad), "INGEST_API_PORT": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "relay_ingest_api"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert str(bad) in result.stderr
    assert "recipe-prefix" in result.stderr
