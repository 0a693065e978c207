"""``python -m relay_bundle_builder``: run the bundle-builder until SIGTERM/SIGINT."""

from __future__ import annotations

from relay_bundle_builder.main import SERVICE, create_app
from relay_bundle_builder.settings import Settings
from relay_platform.entrypoint import run_stream_service


def main() -> None:
    run_stream_service(
        SERVICE,
        Settings,
        lambda settings, tracing: create_app(settings, tracer_provider=tracing),
    )


if __name__ == "__main__":
    main()
