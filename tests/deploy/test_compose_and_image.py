"""docker-compose.yml and deploy/Dockerfile carry no dev config and no secret: the operator's tenant file is mounted
read-only from a required variable, and every secret is required interpolation (``${NAME:?...}``), never a default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
# Our images (built from deploy/Dockerfile), as opposed to Kafka, PostgreSQL, MinIO and Jaeger.
RELAY_SERVICES = {name: spec for name, spec in SERVICES.items() if "build" in spec}
DELIVERERS = {name for name in RELAY_SERVICES if name.startswith("deliver-")}
# `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}`, `${NAME?message}`
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<rest>[^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|SIGNING_KEY|PRIVATE_KEY")
TENANTS_TARGET = "/run/relay/tenants.yaml"


def _interpolations() -> list[re.Match[str]]:
    return list(INTERPOLATION.finditer(COMPOSE_TEXT))


def _env(service: str) -> dict[str, str]:
    environment = RELAY_SERVICES[service].get("environment", {})
    assert isinstance(environment, dict), f"{service}: environment as a mapping"
    return {str(k): str(v) for k, v in environment.items()}


def test_the_compose_file_knows_every_service() -> None:
    expected = {
        "ingest-api",
        "association-store",
        "bundle-builder",
        "deliver-email",
        "deliver-sftp",
        "deliver-s3",
        "deliver-azure-blob",
        "deliver-zapier",
        "retry",
        "notifier",
    }
    assert set(RELAY_SERVICES) == expected


def test_every_secret_is_required_interpolation_never_a_default() -> None:
    secrets = [m for m in _interpolations() if SECRET_NAME.search(m["name"])]
    assert {m["name"] for m in secrets} >= {
        "LINKS_SIGNING_KEY",
        "ASSOCIATION_STORE_API_TOKEN",
        "POSTGRES_PASSWORD",
        "OBJECT_STORE_S3_SECRET_ACCESS_KEY",
        "SMTP_PASSWORD",
    }
    for match in secrets:
        assert match["op"] in {":?", "?"}, f"{match[0]}: a secret must be required (${{NAME:?...}}), not defaulted"
    # Only the SMTP login may be set empty (a relay that takes none); every other secret must be non-empty.
    for match in secrets:
        if not match["name"].startswith("SMTP_"):
            assert match["op"] == ":?", match[0]


def test_no_secret_value_is_written_in_the_file() -> None:
    for service, spec in SERVICES.items():
        for name, value in (spec.get("environment") or {}).items():
            if SECRET_NAME.search(str(name)):
                assert INTERPOLATION.fullmatch(str(value)), f"{service}: {name} must come from the environment"


@pytest.mark.parametrize("service", sorted(RELAY_SERVICES))
def test_each_service_reads_the_operators_tenant_file_read_only(service: str) -> None:
    spec = RELAY_SERVICES[service]
    mounts = [str(volume) for volume in spec.get("volumes", [])]
    tenant_mounts = [m for m in mounts if m.endswith(f":{TENANTS_TARGET}:ro")]
    assert len(tenant_mounts) == 1, mounts
    [source] = [m.removesuffix(f":{TENANTS_TARGET}:ro") for m in tenant_mounts]
    match = INTERPOLATION.fullmatch(source)
    assert match is not None
    assert (match["name"], match["op"]) == ("RELAY_TENANTS_FILE", ":?")
    assert _env(service)["RELAY_TENANTS_FILE"] == TENANTS_TARGET
    for text in [*mounts, *_env(service).values()]:
        assert "config/" not in text
        assert "dev.yaml" not in text
        assert not text.startswith("./config")


def test_the_link_key_goes_only_to_the_services_that_sign_or_verify_links() -> None:
    holders = {name for name in RELAY_SERVICES if "LINKS_SIGNING_KEY" in _env(name)}
    assert holders == DELIVERERS | {"ingest-api"}


def test_both_ends_of_the_internal_api_share_one_required_token() -> None:
    store = _env("association-store")["ASSOCIATION_STORE_API_TOKEN"]
    client = _env("ingest-api")["INGEST_API_ASSOCIATION_STORE_TOKEN"]
    assert store == client
    match = INTERPOLATION.fullmatch(store)
    assert match is not None
    assert (match["name"], match["op"]) == ("ASSOCIATION_STORE_API_TOKEN", ":?")
    # It listens beyond loopback, which is exactly when the store demands a token.
    assert _env("association-store")["ASSOCIATION_STORE_HTTP_HOST"] == "0.0.0.0"


def test_the_image_carries_no_config() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    instructions = [line for line in dockerfile.splitlines() if line and not line.startswith("#")]
    for line in instructions:
        assert "config" not in line, line
        assert "dev.yaml" not in line, line
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {"config", ".env", "var"} <= ignored
