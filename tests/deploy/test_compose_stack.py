"""docker-compose.yml is a valid Compose file with every service, health check and dependency the stack needs.

No Docker engine runs here, so the file is checked against the Compose Specification's JSON Schema, vendored as
tests/deploy/schemas/compose-spec.json from compose-spec/compose-spec schema/compose-spec.json at commit
170098ba07d9f53c383a41bfd4c5166b0a4529a6 (2026-06-23), and then for what `docker compose up` relies on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
RELAY_SERVICES = {name: spec for name, spec in SERVICES.items() if "build" in spec}
DELIVERERS = sorted(name for name in RELAY_SERVICES if name.startswith("deliver-"))
INFRASTRUCTURE = {"kafka", "postgres", "minio", "azurite", "sftp", "mailpit", "jaeger", "prometheus", "grafana"}
# Who needs what before it starts (the service's settings name these stores).
DATABASE_USERS = {"association-store", "retry", "notifier"}
OBJECT_STORE_USERS = {"ingest-api", "bundle-builder", *DELIVERERS}
OPS_READYZ = "http://127.0.0.1:9100/readyz"


def _depends_on(service: str) -> dict[str, dict[str, Any]]:
    depends = SERVICES[service].get("depends_on", {})
    assert isinstance(depends, dict), f"{service}: depends_on as a mapping with conditions"
    return depends


def test_the_file_follows_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests" / "deploy" / "schemas" / "compose-spec.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(COMPOSE), key=lambda e: list(e.absolute_path))
    assert not errors, "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_check_refuses_a_misspelt_key() -> None:
    schema = json.loads((ROOT / "tests" / "deploy" / "schemas" / "compose-spec.json").read_text(encoding="utf-8"))
    broken = {"services": {"kafka": {"image": "apache/kafka", "healthcheck": {"tset": ["CMD", "true"]}}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_the_stack_has_its_infrastructure() -> None:
    assert set(SERVICES) - set(RELAY_SERVICES) == INFRASTRUCTURE
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "8025:8025" in SERVICES["mailpit"]["ports"]  # the captured mail's web UI
    assert SERVICES["azurite"]["image"].startswith("mcr.microsoft.com/azure-storage/azurite")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_has_a_health_check(service: str) -> None:
    healthcheck = SERVICES[service]["healthcheck"]
    assert healthcheck["test"][0] == "CMD", service
    assert not healthcheck.get("disable", False)
    for field in ("interval", "timeout", "retries", "start_period"):
        assert field in healthcheck, f"{service}: {field}"


@pytest.mark.parametrize("service", sorted(RELAY_SERVICES))
def test_relay_services_are_healthy_when_ready_on_the_ops_port(service: str) -> None:
    test = SERVICES[service]["healthcheck"]["test"]
    # The slim image has Python and no curl: urlopen raises on a 503, so the check fails until /readyz says 200.
    assert test[:3] == ["CMD", "python", "-c"]
    assert "urllib.request.urlopen" in test[3]
    assert OPS_READYZ in test[3]
    environment = SERVICES[service]["environment"]
    assert environment["OPS_PORT"] == "9100"
    assert environment["OPS_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_dependencies_exist_and_wait_for_health_where_there_is_one(service: str) -> None:
    for dependency, spec in _depends_on(service).items():
        assert dependency in SERVICES, f"{service} depends on unknown {dependency}"
        assert dependency != service
        if spec["condition"] == "service_healthy":
            assert "healthcheck" in SERVICES[dependency]


def test_dependencies_have_no_cycle() -> None:
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(service: str) -> None:
        assert service not in visiting, f"dependency cycle through {service}"
        if service in done:
            return
        visiting.add(service)
        for dependency in _depends_on(service):
            visit(dependency)
        visiting.discard(service)
        done.add(service)

    for service in SERVICES:
        visit(service)


@pytest.mark.parametrize("service", sorted(RELAY_SERVICES))
def test_relay_services_wait_for_the_stores_they_use(service: str) -> None:
    depends = _depends_on(service)
    healthy = {name for name, spec in depends.items() if spec["condition"] == "service_healthy"}
    assert "kafka" in healthy
    if service != "association-store":
        # It creates the topics; consumers joining before would find none.
        assert "association-store" in healthy
    if service in DATABASE_USERS:
        assert "postgres" in healthy
    if service in OBJECT_STORE_USERS:
        assert "minio" in healthy
    assert "jaeger" in depends  # traces from the first request; started is enough, tracing must never block


@pytest.mark.parametrize("service", DELIVERERS)
def test_deliverers_run_several_replicas(service: str) -> None:
    assert int(SERVICES[service]["deploy"]["replicas"]) >= 2
    assert "ports" not in SERVICES[service], "a fixed host port would stop a second replica"


def test_prometheus_scrapes_every_relay_service_on_the_ops_port() -> None:
    mounts = SERVICES["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    scraped: dict[str, str] = {}
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for discovery in job["dns_sd_configs"]:
            assert discovery["port"] == 9100
            for name in discovery["names"]:
                scraped[name] = job["job_name"]
    assert scraped == {name: name for name in RELAY_SERVICES}


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    grafana = SERVICES["grafana"]
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for mount in grafana["volumes"]:
        source = mount.split(":", 1)[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), mount
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    [datasource] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "recipe-relay.yml").read_text())["providers"]
    dashboards = provider["options"]["path"]
    assert f"./deploy/grafana/recipe-relay.json:{dashboards}/recipe-relay.json:ro" in grafana["volumes"]
