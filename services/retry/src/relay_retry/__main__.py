"""``python -m relay_retry``: run the retry service until SIGTERM/SIGINT."""

from __future__ import annotations

from relay_platform.entrypoint import run_stream_service
from relay_retry.domain import SERVICE
from relay_retry.main import create_app
from relay_retry.settings import Settings


def main() -> None:
    run_stream_service(
        SERVICE,
        Settings,
        lambda settings, tracing: create_app(settings, tracer_provider=tracing),
    )


if __name__ == "__main__":
    main()
