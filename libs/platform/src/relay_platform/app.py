"""The one lifecycle every Kafka service has: resources open before the consumers start and close after they stop.

``service_app`` builds the FastStream app around a broker:

0. the ops port (``relay_platform.ops``: ``/healthz``, ``/readyz``, ``/metrics``) starts first, so probes get
   answers while the rest starts; start-up then waits for the broker's address to accept connections (``/readyz``
   says 503 meanwhile) instead of exiting while Kafka is still coming up;
1. ``resources(context)`` is entered (an async context manager: databases, object stores, clients, an internal
   HTTP API); what the handlers need goes into the FastStream context there (``context.set_global``);
2. the broker connects and the consumers start;
3. ``background`` tasks start (a scheduler); one that ends with an error stops the app, so it is restarted instead
   of running without it;
4. on SIGTERM: background tasks are cancelled, ``drain()`` lets in-flight handlers finish and publish while the
   broker is still up, the broker stops, then ``resources`` close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from functools import partial

from faststream import ContextRepo, FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from relay_platform.ops import Check, OnScrape, OpsServer, attach, broker_checks, consumer_lag
from relay_platform.settings import ServiceSettings

logger = logging.getLogger("relay.app")

OpenResources = Callable[[ContextRepo], AbstractAsyncContextManager[object]]
Background = Callable[[], Awaitable[None]]


def service_app(
    broker: KafkaBroker,
    *,
    resources: OpenResources | None = None,
    background: Sequence[tuple[str, Background]] = (),
    drain: Callable[[], Awaitable[None]] | None = None,
    specification: AsyncAPI | None = None,
    service: str | None = None,
    settings: ServiceSettings | None = None,
    readiness: Mapping[str, Check] | None = None,
    on_scrape: Sequence[OnScrape] = (),
) -> FastStream:
    """The FastStream app of a service; nothing connects until it runs (so ``faststream docs gen`` can import it).

    ``background`` names each long-running task (``("retry-scheduler", scheduler.run)``).

    With ``service`` and ``settings``, the app serves the ops port of ``settings.ops``: ready when the broker
    answers, every consumer has joined its group and each of ``readiness`` (``{"database": store.ping}``) passes;
    ``on_scrape`` refreshes the service's scrape-time gauges. ``ops_server(app).port`` is the bound port.
    """
    stack = AsyncExitStack()
    tasks: set[asyncio.Task[None]] = set()
    app: FastStream
    ops: OpsServer | None = None
    if service is not None and settings is not None:
        ops = OpsServer(service, settings.ops)
        for name, check in broker_checks(broker, timeout_s=settings.ops.check_timeout_s).items():
            ops.add_check(name, check)
        for name, check in (readiness or {}).items():
            ops.add_check(name, check)
        ops.on_scrape.extend([consumer_lag(service, broker), *on_scrape])
    bootstrap = settings.kafka.bootstrap_servers if settings is not None else None

    async def start_up() -> None:
        try:
            if ops is not None:
                await ops.start()
            if resources is not None:
                await stack.enter_async_context(resources(app.context))
            # A broker that answers before connecting is FastStream's in-memory TestBroker: nothing to wait for.
            if bootstrap is not None and not await broker.ping(0.1):
                await wait_for_broker(bootstrap)
        except BaseException:
            # FastStream runs no shutdown hook after a failed start: close what was opened here.
            await stack.aclose()
            if ops is not None:
                await ops.stop()
            raise

    async def start_background() -> None:
        for name, run in background:
            task = asyncio.create_task(_run(run), name=name)
            task.add_done_callback(partial(_background_stopped, app=app))
            tasks.add(task)

    async def stop_background() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tasks.clear()
        if drain is not None:
            await drain()

    async def close_resources() -> None:
        try:
            await stack.aclose()
        finally:
            if ops is not None:
                await ops.stop()

    app = FastStream(
        broker,
        on_startup=[start_up],
        after_startup=[start_background],
        on_shutdown=[stop_background],
        after_shutdown=[close_resources],
        specification=specification,
    )
    if ops is not None:
        attach(app, ops)
    return app


_BROKER_WAIT_MAX_S = 5.0


async def wait_for_broker(bootstrap_servers: str, *, connect_timeout_s: float = 2.0) -> None:
    """Return once one of the bootstrap addresses accepts a TCP connection, trying again (up to every 5 s) until
    then: a service started before Kafka waits, not ready, instead of exiting. Only the connection is tried, so no
    half-started Kafka client is left behind; a broker that accepts but refuses the client still fails start-up."""
    addresses = [_host_port(server) for server in bootstrap_servers.split(",") if server.strip()]
    wait = 0.25
    tries = 0
    while True:
        for host, port in addresses:
            try:
                async with asyncio.timeout(connect_timeout_s):
                    _reader, writer = await asyncio.open_connection(host, port)
            except (OSError, TimeoutError):
                continue
            writer.close()
            await writer.wait_closed()
            return
        tries += 1
        if tries == 1 or tries % 10 == 0:
            logger.warning("Kafka at %s does not answer yet; waiting (not ready meanwhile)", bootstrap_servers)
        await asyncio.sleep(wait)
        wait = min(wait * 2, _BROKER_WAIT_MAX_S)


def _host_port(server: str) -> tuple[str, int]:
    """``host:port`` (a ``PLAINTEXT://`` prefix and IPv6 brackets allowed); Kafka's 9092 when no port is given."""
    address = server.strip().split("://")[-1]
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or host.endswith(":"):
        return address.strip("[]"), 9092
    return host.strip("[]"), int(port)


async def _run(run: Background) -> None:
    await run()


def _background_stopped(task: asyncio.Task[None], *, app: FastStream) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        # Without it the service would accept messages and never finish their work: stop, and be restarted.
        logger.critical("background task %s crashed; stopping the service", task.get_name(), exc_info=error)
        app.exit()
