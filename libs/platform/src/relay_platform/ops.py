"""The ops HTTP port every service serves (``OpsSettings``: ``OPS_HOST``/``OPS_PORT``, default ``0.0.0.0:9100``).

- ``GET /healthz``: 200 ``{"status": "ok"}`` while the process runs (liveness; no dependency is checked, so a
  broker outage never gets every pod restarted);
- ``GET /readyz``: 200 ``{"status": "ready", "checks": {...}}`` when every check passes, else 503 with
  ``"status": "not_ready"``; each check is ``"ok"`` or ``"failing"`` (never an error text: it could carry a URL
  with credentials) and is cut off after ``check_timeout_s``, so a hung dependency is a 503, not a hung probe;
- ``GET /metrics``: Prometheus text of the default registry (``relay_platform.metrics``), after the gauges that
  are computed at scrape time (consumer lag, retry backlog) were refreshed.

A Kafka service's server is built by ``relay_platform.app.service_app`` (checks ``broker`` and ``consumers``
plus the service's own, e.g. ``database``); the ingest API starts one in its ``cleanup_ctx``. Tests find the bound
port through ``ops_server(app).port``.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiokafka import TopicPartition
from faststream import FastStream
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from relay_platform.metrics import CONSUMER_LAG
from relay_platform.settings import OpsSettings

logger = logging.getLogger("relay.ops")

Check = Callable[[], Awaitable[bool]]
"""A readiness check: True when its dependency answers; an exception counts as failing."""
OnScrape = Callable[[], Awaitable[None]]
"""Refreshes gauges computed at scrape time, before ``/metrics`` answers."""

_SERVERS: weakref.WeakKeyDictionary[FastStream, OpsServer] = weakref.WeakKeyDictionary()


class OpsServer:
    """The ops port of one service: start it first, stop it last. ``port`` is the bound port once started."""

    def __init__(self, service: str, settings: OpsSettings) -> None:
        self.service = service
        self.settings = settings
        self.checks: dict[str, Check] = {}
        self.on_scrape: list[OnScrape] = []
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    def add_check(self, name: str, check: Check) -> None:
        self.checks[name] = check

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        # No access log: probes every few seconds would drown the service's own lines.
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        # The bound address (with port 0, the port the system chose).
        self.port = int(runner.addresses[0][1])
        logger.info("%s ops port on %s:%d (/healthz /readyz /metrics)", self.service, self.settings.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def readiness(self) -> dict[str, bool]:
        """Every check, run at once, each bounded by ``check_timeout_s``."""
        names = list(self.checks)
        results = await asyncio.gather(*(self._bounded(self.checks[name]) for name in names))
        return dict(zip(names, results, strict=True))

    async def _bounded(self, check: Check) -> bool:
        try:
            async with asyncio.timeout(self.settings.check_timeout_s):
                return bool(await check())
        except Exception as error:  # noqa: BLE001 - any failure of a dependency means "not ready"
            logger.debug("readiness check failed: %s", type(error).__name__)
            return False

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        checks = await self.readiness()
        ready = all(checks.values())
        body = {
            "status": "ready" if ready else "not_ready",
            "checks": {name: "ok" if up else "failing" for name, up in checks.items()},
        }
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        for refresh in self.on_scrape:
            try:
                async with asyncio.timeout(self.settings.check_timeout_s):
                    await refresh()
            except Exception as error:  # noqa: BLE001 - a gauge left stale must not cost the whole scrape
                logger.warning("metrics refresh failed: %s", type(error).__name__)
        response = web.Response(body=generate_latest(REGISTRY))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


def ops_server(app: FastStream) -> OpsServer | None:
    """The ops server ``service_app`` built for ``app`` (``.port`` once the app started)."""
    return _SERVERS.get(app)


def attach(app: FastStream, server: OpsServer) -> None:
    _SERVERS[app] = server


def _consumers(broker: KafkaBroker) -> list[Any]:
    """The running aiokafka consumers of every subscriber (FastStream 0.7: a concurrent-between-partitions
    subscriber keeps one per worker in ``consumer_subgroup``, the others one in ``consumer``)."""
    found: list[Any] = []
    for subscriber in broker.subscribers:
        group = getattr(subscriber, "consumer_subgroup", None) or [getattr(subscriber, "consumer", None)]
        found.extend(consumer for consumer in group if consumer is not None)
    return found


def _joined(consumer: Any) -> bool:
    """The consumer is a member of its group with an assignment (possibly empty: more members than partitions)."""
    coordinator = getattr(consumer, "_coordinator", None)
    if getattr(consumer, "_group_id", None) is None:
        return coordinator is not None  # a consumer without a group is ready once started
    generation = getattr(coordinator, "generation", -1)
    state = getattr(getattr(consumer, "_subscription", None), "subscription", None)
    return generation >= 0 and getattr(state, "assignment", None) is not None


def broker_checks(broker: KafkaBroker, *, timeout_s: float) -> dict[str, Check]:
    """``broker``: the cluster answers a metadata request; ``consumers``: every subscriber's consumers are
    running and have joined their group."""

    async def broker_up() -> bool:
        return await broker.ping(timeout_s)

    async def consumers_joined() -> bool:
        expected = [s for s in broker.subscribers if getattr(s, "calls", None)]
        consumers = _consumers(broker)
        return bool(consumers) and len(consumers) >= len(expected) and all(_joined(c) for c in consumers)

    return {"broker": broker_up, "consumers": consumers_joined}


def consumer_lag(service: str, broker: KafkaBroker) -> OnScrape:
    """Sets ``relay_consumer_lag`` from each running consumer: highwater - position per assigned partition (both
    known locally; a partition not fetched yet has no highwater and is left out). Series of partitions no longer
    assigned here are removed, so a rebalance does not leave stale lag behind."""
    shown: set[tuple[str, str, str, str]] = set()

    async def refresh() -> None:
        current: dict[tuple[str, str, str, str], int] = {}
        for consumer in _consumers(broker):
            group = str(getattr(consumer, "_group_id", None) or "")
            assigned: set[TopicPartition] = consumer.assignment()
            for tp in assigned:
                highwater = consumer.highwater(tp)
                if highwater is None:
                    continue
                position = await consumer.position(tp)
                current[(service, group, tp.topic, str(tp.partition))] = max(int(highwater) - int(position), 0)
        for labels in shown - current.keys():
            CONSUMER_LAG.remove(*labels)
        for labels, lag in current.items():
            CONSUMER_LAG.labels(*labels).set(lag)
        shown.clear()
        shown.update(current)

    return refresh
