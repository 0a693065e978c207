"""``python -m relay_association_store`` / ``relay-association-store``: run the service."""

from __future__ import annotations

from relay_association_store.main import SERVICE, create_app
from relay_association_store.settings import Settings
from relay_platform.entrypoint import run_stream_service
from relay_platform.tenants import load_tenants


def main() -> None:
    run_stream_service(
        SERVICE,
        Settings,
        lambda settings, tracing: create_app(
            settings, tenants=load_tenants(settings.tenants_file), tracer_provider=tracing
        ),
    )


if __name__ == "__main__":
    main()
