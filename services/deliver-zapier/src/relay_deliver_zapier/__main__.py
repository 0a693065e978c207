"""``python -m relay_deliver_zapier``: run the deliver-zapier service until SIGTERM."""

from __future__ import annotations

from relay_deliver_zapier.main import SERVICE, create_app
from relay_deliver_zapier.settings import Settings
from relay_platform.entrypoint import run_stream_service


def main() -> None:
    run_stream_service(
        SERVICE,
        Settings,
        lambda settings, tracing: create_app(settings, tracer_provider=tracing),
    )


if __name__ == "__main__":
    main()
