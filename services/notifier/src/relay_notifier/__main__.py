"""``python -m relay_notifier``: run the notifier until SIGTERM/SIGINT."""

from __future__ import annotations

from relay_notifier.main import SERVICE, create_app
from relay_notifier.settings import Settings
from relay_platform.entrypoint import run_stream_service


def main() -> None:
    run_stream_service(
        SERVICE,
        Settings,
        lambda settings, tracing: create_app(settings, tracer_provider=tracing),
    )


if __name__ == "__main__":
    main()
