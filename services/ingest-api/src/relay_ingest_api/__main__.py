"""``python -m relay_ingest_api`` / ``relay-ingest-api``: run the ingest API until stopped."""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import ValidationError

from relay_ingest_api.main import create_app
from relay_ingest_api.middleware import SafeAccessLogger
from relay_ingest_api.settings import SERVICE, Settings
from relay_platform.logging import configure_logging
from relay_platform.telemetry import setup_tracing
from relay_platform.tenants import ConfigError

logger = logging.getLogger("relay.ingest_api")


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as error:
        raise SystemExit(f"{SERVICE}: invalid settings: {error}") from error
    configure_logging(SERVICE, settings.log_level, json_lines=settings.log_json)
    provider = setup_tracing(SERVICE)
    try:
        app = create_app(settings, tracer_provider=provider)
    except ConfigError as error:
        raise SystemExit(f"{SERVICE}: {error}") from error
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log_class=SafeAccessLogger,
        print=logger.info,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()
