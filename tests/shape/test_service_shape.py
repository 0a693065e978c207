"""Every service has the same shape, so a reader finds any behaviour in two hops: from a route or topic in
``handlers.py`` to its use case in ``service.py``, and from there to the rules in ``domain.py``.

The import-linter contracts (``.importlinter``) hold the layering; these tests hold the role files and the idioms
that a contract cannot express (one subscriber helper, one lifecycle, ports in one place, one SQL bootstrap).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(path for path in (ROOT / "services").iterdir() if (path / "pyproject.toml").is_file())
ROLE_FILES = ("main.py", "settings.py", "handlers.py", "service.py", "domain.py", "ports.py", "adapters/__init__.py")
HTTP_SERVICES = {"ingest-api"}  # aiohttp apps: a route table instead of subscribers, aiohttp's cleanup_ctx as lifecycle
DATABASE_SERVICES = {"association-store", "retry", "notifier"}


def _package(service: Path) -> Path:
    return service / "src" / ("relay_" + service.name.replace("-", "_"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _called_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                names.add(node.func.id)
            elif isinstance(node.func, ast.Attribute):
                names.add(node.func.attr)
    return names


def _source_files() -> list[Path]:
    roots = [_package(service) for service in SERVICES] + [
        path / "src" for path in (ROOT / "libs").iterdir() if (path / "src").is_dir()
    ]
    return sorted(file for root in roots for file in root.rglob("*.py"))


def test_there_are_services() -> None:
    assert len(SERVICES) >= 10


@pytest.mark.parametrize("service", SERVICES, ids=lambda path: path.name)
def test_every_service_has_the_role_files(service: Path) -> None:
    package = _package(service)
    missing = [name for name in ROLE_FILES if not (package / name).is_file()]
    assert not missing, f"{service.name} lacks {missing}"


@pytest.mark.parametrize("service", SERVICES, ids=lambda path: path.name)
def test_handlers_is_a_routing_table(service: Path) -> None:
    """A Kafka service's ``handlers.build_router()``; the HTTP service's ``handlers.routes`` (aiohttp's table)."""
    tree = _tree(_package(service) / "handlers.py")
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    defined |= {
        alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    defined |= {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    expected = "routes" if service.name in HTTP_SERVICES else "build_router"
    assert expected in defined, f"{service.name}/handlers.py has no {expected}"


@pytest.mark.parametrize("service", [s for s in SERVICES if s.name not in HTTP_SERVICES], ids=lambda path: path.name)
def test_kafka_services_share_one_lifecycle(service: Path) -> None:
    main = _package(service) / "main.py"
    calls = _called_names(_tree(main))
    # Deliverers build theirs through the shared runtime, which calls service_app itself.
    assert calls & {"service_app", "build_deliverer_app"}, f"{service.name}/main.py does not use service_app()"
    assert "FastStream" not in calls, f"{service.name}/main.py builds its own FastStream app"


def test_only_the_platform_creates_subscribers() -> None:
    """Consumer group, ack policy, offset reset and poll interval are set in one place: ``subscribe()``."""
    allowed = ROOT / "libs/platform/src/relay_platform/subscriber.py"
    offenders = [
        str(file.relative_to(ROOT))
        for file in _source_files()
        if file != allowed and "subscriber" in _called_names(_tree(file))
    ]
    assert not offenders, f"subscribers made outside relay_platform.subscriber.subscribe(): {offenders}"


def _is_protocol(node: ast.AST) -> bool:
    return isinstance(node, ast.ClassDef) and any(
        (isinstance(base, ast.Name) and base.id == "Protocol")
        or (isinstance(base, ast.Attribute) and base.attr == "Protocol")
        for base in node.bases
    )


def test_protocols_are_declared_in_ports_only() -> None:
    offenders = [
        f"{file.relative_to(ROOT)}:{node.name}"
        for service in SERVICES
        for file in _package(service).rglob("*.py")
        if file.name != "ports.py"
        for node in ast.walk(_tree(file))
        if isinstance(node, ast.ClassDef) and _is_protocol(node)
    ]
    assert not offenders, f"Protocols outside ports.py: {offenders}"


def test_every_store_is_created_by_alembic_migrations() -> None:
    offenders = [
        str(file.relative_to(ROOT)) for file in _source_files() if "create_all" in file.read_text(encoding="utf-8")
    ]
    assert not offenders, f"tables created outside migrations: {offenders}"
    for name in sorted(DATABASE_SERVICES):
        migrations = _package(ROOT / "services" / name) / "migrations"
        assert (migrations / "env.py").is_file(), f"{name} has no alembic migrations"
        assert any((migrations / "versions").glob("v0001_*.py")), f"{name} has no initial migration"
