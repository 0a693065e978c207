"""``python -m relay_deliver_zapier``: run the deliver-email service until SIGTERM."""

import asyncio
import sys

from pydantic import ValidationError

from relay_deliver_zapier.main import SERVICE, create_app
from relay_deliver_zapier.settings import Settings
from relay_platform.logging import configure_logging
from relay_platform.telemetry import setup_tracing
from relay_platform.tenants import ConfigError


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as error:
        # Locations and messages only: the rejected input may be a secret.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False))
        sys.exit(f"{SERVICE}: invalid settings: {problems}")
    configure_logging(SERVICE, settings.log_level, json_lines=settings.log_json)
    try:
        app = create_app(settings, tracer_provider=setup_tracing(SERVICE))
    except ConfigError as error:
        sys.exit(f"{SERVICE}: {error}")
    asyncio.run(app.run())


if __name__ == "__main__":
    main()
