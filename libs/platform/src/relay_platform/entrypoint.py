"""How every service process starts: settings from the environment, logging, tracing, then the app."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TypeVar

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from relay_platform.logging import configure_logging
from relay_platform.settings import ServiceSettings
from relay_platform.telemetry import setup_tracing
from relay_platform.tenants import ConfigError

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def load_settings(service: str, settings_class: type[SettingsT]) -> SettingsT:
    """The service's settings; a bad or missing one stops the process naming the setting, never its value
    (it may be a secret)."""
    try:
        return settings_class()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False))
        sys.exit(f"{service}: invalid settings: {problems}")


def start_observability(service: str, settings: ServiceSettings) -> TracerProvider:
    """JSON logs with trace IDs, and the process's tracer provider."""
    configure_logging(service, settings.log_level, json_lines=settings.log_json)
    return setup_tracing(service)


def run_stream_service(
    service: str,
    settings_class: type[SettingsT],
    build: Callable[[SettingsT, TracerProvider], FastStream],
) -> None:
    """Run a FastStream service until SIGTERM/SIGINT. A bad tenant file exits non-zero with the message naming the
    file and the bad path, so the orchestrator (or ``relay dev``) shows why."""
    settings = load_settings(service, settings_class)
    tracer_provider = start_observability(service, settings)
    try:
        app = build(settings, tracer_provider)
    except ConfigError as error:
        sys.exit(f"{service}: {error}")
    asyncio.run(app.run())
