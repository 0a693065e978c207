"""Composition root: broker, handlers, the SQL schedule and the scheduler task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from relay_platform.broker import make_broker
from relay_platform.tenants import TenantsConfig, load_tenants
from relay_retry import service
from relay_retry.adapters.outbox import KafkaOutbox
from relay_retry.adapters.schedule import SqlRetrySchedule
from relay_retry.domain import SERVICE
from relay_retry.handlers import Runtime, make_router
from relay_retry.scheduler import Scheduler
from relay_retry.settings import Settings

logger = logging.getLogger("relay.retry")


def create_app(
    settings: Settings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    tenants: TenantsConfig | None = None,
) -> FastStream:
    """The retry app; a bad tenant file raises ``ConfigError`` here, before anything starts.

    Start-up opens the database (creating the tables) before the consumers start, and starts the scheduler once
    the broker is connected; shutdown stops the scheduler before the broker disconnects.
    """
    settings = settings or Settings()
    tenants = tenants if tenants is not None else load_tenants(settings.tenants_file)
    broker = make_broker(settings.kafka, service=SERVICE, tracer_provider=tracer_provider)
    outbox = KafkaOutbox(broker)
    runtime = Runtime(tenants=tenants, outbox=outbox, jitter=settings.jitter)
    broker.include_router(make_router(runtime, settings.kafka))
    tasks: set[asyncio.Task[None]] = set()
    app: FastStream

    resources = contextlib.AsyncExitStack()

    async def on_startup() -> None:
        schedule = await resources.enter_async_context(
            SqlRetrySchedule.open(settings.database_url, connect_timeout_s=settings.database_connect_timeout_s)
        )

        runtime.schedule = schedule
        runtime.scheduler = Scheduler(
            schedule,
            partial(service.publish_due, schedule=schedule, outbox=outbox),
            batch_size=settings.batch_size,
            idle_recheck_s=settings.idle_recheck_s,
            error_backoff_s=settings.error_backoff_s,
        )

    async def after_startup() -> None:
        if runtime.scheduler is None:
            return
        task = asyncio.create_task(runtime.scheduler.run(), name="retry-scheduler")
        task.add_done_callback(partial(_scheduler_stopped, app=app))
        tasks.add(task)

    async def on_shutdown() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tasks.clear()

    async def after_shutdown() -> None:
        runtime.scheduler = None
        runtime.schedule = None
        await resources.aclose()

    app = FastStream(
        broker,
        on_startup=[on_startup],
        after_startup=[after_startup],
        on_shutdown=[on_shutdown],
        after_shutdown=[after_shutdown],
    )
    return app


def _scheduler_stopped(task: asyncio.Task[None], *, app: FastStream) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        # Without its scheduler the service would accept retries and never send them: stop, and be restarted.
        logger.critical("retry scheduler crashed; stopping the service", exc_info=error)
        app.exit()
