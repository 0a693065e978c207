"""``python -m relay_deliver_s3``: run the deliver-s3 service until SIGTERM."""

import asyncio
import sys

from pydantic import ValidationError

from relay_deliver_s3.main import SERVICE, create_app
from relay_deliver_s3.settings import Settings
from relay_platform.logging import configure_logging
from relay_platform.telemetry import setup_tracing
from relay_platform.tenants import ConfigError


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as error:
        sys.exit(f"{SERVICE}: invalid settings: {error}")
    configure_logging(SERVICE, settings.log_level, json_lines=settings.log_json)
    try:
        app = create_app(settings, tracer_provider=setup_tracing(SERVICE))
    except ConfigError as error:
        # The message names the file and the bad path; exit non-zero so the orchestrator shows it.
        sys.exit(f"{SERVICE}: {error}")
    asyncio.run(app.run())


if __name__ == "__main__":
    main()
