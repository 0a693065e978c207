"""``python -m relay_association_store`` / ``relay-association-store``: run the service."""

from __future__ import annotations

import asyncio
import sys

from pydantic import ValidationError

from relay_association_store.main import SERVICE, create_app
from relay_association_store.settings import Settings
from relay_platform.logging import configure_logging
from relay_platform.telemetry import setup_tracing
from relay_platform.tenants import ConfigError, load_tenants


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as error:
        sys.exit(f"{SERVICE}: invalid settings: {error}")
    configure_logging(SERVICE, settings.log_level, json_lines=settings.log_json)
    tracer_provider = setup_tracing(SERVICE)
    try:
        tenants = load_tenants(settings.tenants_file)
    except ConfigError as error:
        sys.exit(f"{SERVICE}: {error}")
    app = create_app(settings, tenants=tenants, tracer_provider=tracer_provider)
    asyncio.run(app.run())


if __name__ == "__main__":
    main()
