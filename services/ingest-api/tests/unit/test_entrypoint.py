"""``python -m relay_ingest_api`` refuses a bad tenant file, or a missing or weak shared secret, with a message
naming the problem (never the secret) and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from relay_testing.shared_secrets import secrets_env


def test_bad_tenant_file_exits_non_zero_naming_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "tenants.yaml"
    bad.write_text("tenants:\n  demo:\n    recipe-prefix: 'not valid!'\n", encoding="utf-8")
    env = os.environ | secrets_env() | {"INGEST_API_TENANTS_FILE": str(bad), "INGEST_API_PORT": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "relay_ingest_api"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert str(bad) in result.stderr
    assert "recipe-prefix" in result.stderr


def _start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("LINKS_", "INGEST_API_"))}
    return subprocess.run(
        [sys.executable, "-m", "relay_ingest_api"],
        env=inherited | {"INGEST_API_PORT": "0"} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_link_signing_key_stops_start_up_naming_the_variable() -> None:
    result = _start({})
    assert result.returncode != 0
    assert "ingest-api: invalid settings" in result.stderr
    assert "LINKS_SIGNING_KEY" in result.stderr


def test_a_placeholder_signing_key_is_refused_without_echoing_it() -> None:
    result = _start({"LINKS_SIGNING_KEY": "dev-only-signing-key-change-me-dev-only-signing-key"})
    assert result.returncode != 0
    assert "LINKS_SIGNING_KEY" in result.stderr
    assert "placeholder" in result.stderr
    assert "dev-only-signing-key-change-me" not in result.stderr


def test_a_remote_association_store_without_a_token_stops_start_up() -> None:
    env = secrets_env() | {"INGEST_API_ASSOCIATION_STORE_URL": "http://association-store:8081"}
    del env["INGEST_API_ASSOCIATION_STORE_TOKEN"]
    result = _start(env)
    assert result.returncode != 0
    assert "INGEST_API_ASSOCIATION_STORE_TOKEN" in result.stderr
