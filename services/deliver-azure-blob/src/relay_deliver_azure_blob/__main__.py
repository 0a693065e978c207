"""``python -m relay_deliver_azure_blob``: run the deliver-azure-blob service until SIGTERM."""

from __future__ import annotations

from relay_deliver_azure_blob.main import SERVICE, create_app
from relay_deliver_azure_blob.settings import Settings
from relay_platform.entrypoint import run_stream_service


def main() -> None:
    run_stream_service(
        SERVICE,
        Settings,
        lambda settings, tracing: create_app(settings, tracer_provider=tracing),
    )


if __name__ == "__main__":
    main()
