"""``python -m relay_retry``: run the retry service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from pydantic import ValidationError

from relay_platform.logging import configure_logging
from relay_platform.telemetry import setup_tracing
from relay_platform.tenants import ConfigError
from relay_retry.main import create_app
from relay_retry.service import SERVICE
from relay_retry.settings import Settings


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as error:
        raise SystemExit(f"{SERVICE}: invalid settings: {error}") from None
    configure_logging(SERVICE, settings.log_level, json_lines=settings.log_json)
    provider = setup_tracing(SERVICE)
    try:
        app = create_app(settings, tracer_provider=provider)
    except ConfigError as error:
        # The message names the file and the bad path; exit non-zero so the orchestrator shows it.
        raise SystemExit(f"{SERVICE}: {error}") from None
    asyncio.run(app.run())


if __name__ == "__main__":
    main()
