"""``python -m relay_ingest_api`` / ``relay-ingest-api``: run the ingest API until stopped."""

from __future__ import annotations

import gc
import logging
import sys

from aiohttp import web

from relay_ingest_api.main import create_app
from relay_ingest_api.middleware import SafeAccessLogger
from relay_ingest_api.settings import SERVICE, Settings
from relay_platform.entrypoint import load_settings, start_observability
from relay_platform.tenants import ConfigError

logger = logging.getLogger("relay.ingest_api")


def main() -> None:
    settings = load_settings(SERVICE, Settings)
    provider = start_observability(SERVICE, settings)
    try:
        app = create_app(settings, tracer_provider=provider)
    except ConfigError as error:
        sys.exit(f"{SERVICE}: {error}")
    # What is imported and built by now (~200k objects: modules, pydantic schemas) lives as long as the process:
    # frozen, it is left out of every full collection, which otherwise walks all of it while requests wait.
    gc.collect()
    gc.freeze()
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
