"""Composition root: broker, router, the SQL schedule (opened at start-up) and the scheduler task."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import ContextRepo, FastStream
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider

from relay_platform.app import service_app
from relay_platform.broker import make_broker
from relay_platform.metrics import INTEGRATIONS_UNHEALTHY, RETRY_BACKLOG
from relay_platform.tenants import TenantsConfig, load_tenants
from relay_retry import handlers
from relay_retry.adapters.outbox import KafkaOutbox
from relay_retry.adapters.schedule import SqlRetrySchedule
from relay_retry.domain import SERVICE
from relay_retry.ports import RetryPorts
from relay_retry.scheduler import Scheduler
from relay_retry.settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    tenants: TenantsConfig | None = None,
) -> FastStream:
    """The retry app; a bad tenant file raises ``ConfigError`` here, before anything starts.

    Start-up opens the schedule (running its migrations) before the consumers start, and starts the scheduler
    once the broker is connected; a scheduler that crashes stops the app. Shutdown stops the scheduler before the
    broker disconnects.
    """
    settings = settings or Settings()
    tenants = tenants if tenants is not None else load_tenants(settings.tenants_file)
    broker = make_broker(settings.kafka, service=SERVICE, tracer_provider=tracer_provider)
    broker.include_router(handlers.build_router(settings.kafka, group_id=settings.consumer_group))
    schedule = SqlRetrySchedule(settings.database)
    outbox = KafkaOutbox(broker)
    scheduler = Scheduler(
        schedule,
        outbox,
        batch_size=settings.batch_size,
        idle_recheck_s=settings.idle_recheck_s,
        error_backoff_s=settings.error_backoff_s,
        tenants=tenants,
    )
    ports = RetryPorts(tenants=tenants, schedule=schedule, outbox=outbox, wake=scheduler, jitter=settings.jitter)

    @asynccontextmanager
    async def resources(context: ContextRepo) -> AsyncIterator[None]:
        async with schedule.opened():
            context.set_global("ports", ports)
            yield

    async def refresh_backlog() -> None:
        # One COUNT per scrape (Prometheus scrapes every 15-30 s): cheaper than keeping a count in every round.
        RETRY_BACKLOG.set(await schedule.pending())
        INTEGRATIONS_UNHEALTHY.set(await schedule.unhealthy())

    return service_app(
        broker,
        resources=resources,
        background=[("retry-scheduler", scheduler.run)],
        service=SERVICE,
        settings=settings,
        readiness={"database": schedule.ping},
        on_scrape=[refresh_backlog],
        specification=AsyncAPI(
            title="Recipe Relay retry",
            version="1.0.0",
            description="Durable back-off for failed delivery attempts; final failures and dead letters when done.",
        ),
    )
