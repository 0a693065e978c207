"""Composition root: ``create_app(settings) -> web.Application``; resources open once in ``cleanup_ctx``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

from relay_ingest_api import console, handlers
from relay_ingest_api.adapters.association_store import AssociationStoreClient
from relay_ingest_api.adapters.kafka import EventPublisher
from relay_ingest_api.middleware import SafeAccessLogger, error_middleware
from relay_ingest_api.ports import Ports
from relay_ingest_api.ratelimit import FailedKeyThrottle, KeyRateLimiter, TokenBuckets
from relay_ingest_api.renders import PickTicketRenders
from relay_ingest_api.settings import SERVICE, Settings
from relay_ingest_api.state import PORTS, RENDERS, SETTINGS
from relay_pickticket import render_pick_ticket
from relay_platform.errors import TransientError
from relay_platform.links import LinkSigner
from relay_platform.objectstore_settings import open_object_store
from relay_platform.ops import OpsServer
from relay_platform.tenants import load_tenants

OPS_SERVER = web.AppKey("ops_server", OpsServer)
"""The app's ops port (``/healthz`` ``/readyz`` ``/metrics`` on ``OPS_PORT``); ``app[OPS_SERVER].port`` once started."""


def create_app(settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None) -> web.Application:
    """The ingest API; raises ``ConfigError`` for a bad tenant file."""
    settings = settings or Settings()
    app = web.Application(client_max_size=settings.max_body, middlewares=[error_middleware(tracer_provider)])
    app[SETTINGS] = settings
    tenants = load_tenants(settings.tenants_file)
    signer = LinkSigner(settings.links)
    app[RENDERS] = renders = PickTicketRenders(
        render_pick_ticket,
        cache_bytes=settings.render_cache_bytes,
        slots=settings.max_concurrent_renders,
        slot_wait_s=settings.render_slot_wait_s,
        retry_after_s=settings.retry_after_s,
        limiter=TokenBuckets(settings.render_rate_per_s, settings.render_burst),
    )

    async def resources(app: web.Application) -> AsyncIterator[None]:
        publisher = EventPublisher(
            settings.kafka,
            service=SERVICE,
            publish_timeout_s=settings.publish_timeout_s,
            retry_after_s=settings.retry_after_s,
        )
        # Connects in the background: the API starts (answering 503 / readyz 503) while Kafka is down.
        publisher.start()
        timeout = aiohttp.ClientTimeout(total=settings.association_store_timeout_s)
        try:
            async with (
                open_object_store(settings.object_store) as objects,
                aiohttp.ClientSession(timeout=timeout, raise_for_status=False) as session,
            ):
                app[PORTS] = Ports(
                    tenants=tenants,
                    publisher=publisher,
                    objects=objects,
                    associations=AssociationStoreClient(
                        session,
                        settings.association_store_url,
                        retry_after_s=settings.retry_after_s,
                        token=settings.association_store_token,
                    ),
                    links=signer,
                    key_limits=KeyRateLimiter(),
                    # Burst = the largest fan-out: one allowed trigger request can always be paid for in full.
                    fan_out=TokenBuckets(settings.trigger_fanout_per_s, settings.max_trigger_fanout, max_keys=None),
                    failed_keys=FailedKeyThrottle(settings.failed_key_per_s, settings.failed_key_burst),
                    pick_tickets=renders,
                )
                yield
        finally:
            await publisher.close()

    async def close_renders(_app: web.Application) -> None:
        await renders.close()

    app[OPS_SERVER] = ops = _ops_server(app, settings)

    async def serve_ops(_app: web.Application) -> AsyncIterator[None]:
        await ops.start()
        try:
            yield
        finally:
            await ops.stop()

    # First in, last out: the ops port answers while the rest starts and until everything closed.
    app.cleanup_ctx.append(serve_ops)
    app.cleanup_ctx.append(resources)
    app.on_cleanup.append(close_renders)
    app.add_routes(handlers.routes)
    console.add_console_routes(app)
    return app


def _ops_server(app: web.Application, settings: Settings) -> OpsServer:
    """The ops port's readiness is the API's own ``/readyz``: the same three dependencies, so a probe on either port
    gives the same answer (the API's port keeps its ``/healthz`` and ``/readyz`` for the OpenAPI document)."""
    ops = OpsServer(SERVICE, settings.ops)
    timeout_s = min(settings.readiness_timeout_s, settings.ops.check_timeout_s)

    async def broker_up() -> bool:
        ports = app.get(PORTS)
        return ports is not None and await ports.publisher.ping(timeout_s)

    async def object_store_up() -> bool:
        ports = app.get(PORTS)
        if ports is None:
            return False
        try:
            await ports.objects.ping()
        except TransientError:
            return False
        return True

    async def association_store_up() -> bool:
        ports = app.get(PORTS)
        return ports is not None and await ports.associations.ready()

    ops.add_check("broker", broker_up)
    ops.add_check("object-store", object_store_up)
    ops.add_check("association-store", association_store_up)
    return ops


def make_runner(app: web.Application) -> web.AppRunner:
    """An ``AppRunner`` whose access log never prints query strings (``apikey=``) or link tokens."""
    return web.AppRunner(app, access_log_class=SafeAccessLogger)


async def start_server(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving ``app`` on ``host:port`` (0 picks a free port; see ``runner.addresses``)."""
    runner = make_runner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
