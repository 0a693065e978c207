"""Composition root of the notifier: the consumer of outcomes and integration state changes, the SMTP client and
the sent-notices table, opened once per process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import ContextRepo, FastStream
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider

from relay_notifier import handlers
from relay_notifier.adapters.sent import SqlSentNotices
from relay_notifier.ports import NotifierPorts
from relay_notifier.settings import Settings
from relay_platform.app import service_app
from relay_platform.broker import make_broker
from relay_platform.smtp import open_smtp_client
from relay_platform.tenants import TenantsConfig, load_tenants

SERVICE = "notifier"


def create_app(
    settings: Settings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    tenants: TenantsConfig | None = None,
) -> FastStream:
    """The notifier app; a bad tenant file raises ``ConfigError`` here, before anything starts.

    The SMTP connection is opened on the first notice (an SMTP outage never stops the service from starting).
    """
    settings = settings or Settings()
    config = tenants if tenants is not None else load_tenants(settings.tenants_file)
    broker = make_broker(settings.kafka, service=SERVICE, tracer_provider=tracer_provider)
    broker.include_router(handlers.build_router(settings))

    opened: list[SqlSentNotices] = []

    @asynccontextmanager
    async def resources(context: ContextRepo) -> AsyncIterator[None]:
        async with (
            SqlSentNotices.open(settings.database_url, connect_timeout_s=settings.database_connect_timeout_s) as sent,
            open_smtp_client(settings.smtp) as mailer,
        ):
            context.set_global(
                "ports", NotifierPorts(tenants=config, mailer=mailer, sent=sent, from_address=settings.from_address)
            )
            opened.append(sent)
            try:
                yield
            finally:
                opened.clear()
                context.reset_global("ports")

    async def database_up() -> bool:
        # A primary-key lookup of a notice that never exists: one round trip on the table the consumer writes,
        # as cheap as SELECT 1 (the adapter keeps its engine to itself). SMTP is not checked: it is opened on the
        # first notice and its outage is retried per notice.
        if not opened:
            return False
        await opened[0].was_sent("ops-readiness-probe")
        return True

    return service_app(
        broker,
        resources=resources,
        service=SERVICE,
        settings=settings,
        readiness={"database": database_up},
        specification=AsyncAPI(
            title="Recipe Relay notifier",
            version="1.0.0",
            description="E-mails one success or failure notice per finished delivery to the integration's lists, "
            "and one to its failure list when destination health pauses it or it recovers.",
        ),
    )
