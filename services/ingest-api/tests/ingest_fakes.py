"""In-memory ports for the ingest API's fast tests (importable: conftest puts this dir on sys.path)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from relay_contracts.internal_api import (
    DeliveriesPage,
    DeliveryListStatus,
    IntegrationCounts,
    IntegrationStateEntry,
    IntegrationStats,
    OrderLookupField,
    OrdersPage,
)
from relay_ingest_api.ports import Outgoing, Ports, RenderedPdf, RenderKey
from relay_ingest_api.ratelimit import FailedKeyThrottle, KeyRateLimiter, TokenBuckets
from relay_platform.errors import TransientError
from relay_platform.links import LinkInvalidError
from relay_platform.objectstore import ObjectNotFoundError
from relay_platform.tenants import TenantsConfig, load_tenants

TENANTS_FILE = Path(__file__).parent / "tenants.yaml"


class FakePublisher:
    def __init__(self) -> None:
        self.connected = True
        self.published: list[Outgoing] = []

    def ensure_connected(self) -> None:
        if not self.connected:
            raise TransientError("event broker unavailable: not connected", retry_after_s=2)

    async def publish(self, records: Sequence[Outgoing]) -> None:
        self.ensure_connected()
        self.published.extend(records)

    async def ping(self, timeout_s: float) -> bool:
        return self.connected


class FakeObjects:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        self.objects[key] = data

    async def put_stream(self, key: str, body: IO[bytes], *, content_type: str) -> None:
        self.objects[key] = body.read()

    async def get(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectNotFoundError(key) from None

    async def exists(self, key: str) -> bool:
        return key in self.objects

    async def ping(self) -> None:
        return None


class FakeAssociations:
    """The association store: the same pages of orders for every query (each query recorded)."""

    def __init__(self, *pages: list[dict[str, Any]]) -> None:
        self.pages = [OrdersPage.model_validate({"orders": orders}) for orders in pages] or [OrdersPage(orders=[])]
        self.queries: list[tuple[str, str, str, str | None]] = []
        # The console's lists: what each call asked (tenant first), and what it answers.
        self.recent_calls: list[dict[str, Any]] = []
        self.delivery_calls: list[dict[str, Any]] = []
        self.stats_calls: list[dict[str, Any]] = []
        self.failed: DeliveriesPage = DeliveriesPage(deliveries=[])
        self.counts: list[IntegrationCounts] = []
        self.states: list[IntegrationStateEntry] = []
        self.error: Exception | None = None
        """Raised by the console's list calls when set (an unreachable store, a refused cursor...)."""

    async def find_orders(self, tenant: str, field: OrderLookupField, value: str, *, after: str | None = None) -> bytes:
        self.queries.append((tenant, field, value, after))
        return self.pages[0].model_dump_json().encode()

    async def audit(self, tenant: str, *, older_than_s: int, limit: int) -> bytes:
        report = {"tenant": tenant, "olderThanS": older_than_s, "cutoff": "2026-01-01T00:00:00.000Z"}
        return json.dumps(report | {"limit": limit, "truncated": False, "deliveries": []}).encode()

    async def all_orders(self, tenant: str, field: OrderLookupField, value: str) -> AsyncIterator[OrdersPage]:
        after = None
        for page in self.pages:
            self.queries.append((tenant, field, value, after))
            yield page
            after = page.orders[-1].order_id if page.orders else None

    async def recent_orders(self, tenant: str, *, limit: int, after: str | None) -> bytes:
        self.recent_calls.append({"tenant": tenant, "limit": limit, "after": after})
        if self.error is not None:
            raise self.error
        return self.pages[0].model_dump_json().encode()

    async def deliveries(
        self,
        tenant: str,
        *,
        status: DeliveryListStatus,
        integration: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        after: str | None,
    ) -> bytes:
        self.delivery_calls.append(
            {
                "tenant": tenant,
                "status": status,
                "integration": integration,
                "since": since,
                "until": until,
                "limit": limit,
                "after": after,
            }
        )
        if self.error is not None:
            raise self.error
        return self.failed.model_dump_json().encode()

    async def replay_selection(
        self,
        tenant: str,
        *,
        integration: str | None,
        since: datetime,
        until: datetime | None,
        limit: int,
        after: str | None,
    ) -> DeliveriesPage:
        self.delivery_calls.append(
            {
                "tenant": tenant,
                "status": "failed",
                "replayed": False,
                "integration": integration,
                "since": since,
                "until": until,
                "limit": limit,
                "after": after,
            }
        )
        if self.error is not None:
            raise self.error
        return self.failed

    async def integration_stats(self, tenant: str, *, since_s: int) -> IntegrationStats:
        self.stats_calls.append({"tenant": tenant, "since_s": since_s})
        if self.error is not None:
            raise self.error
        return IntegrationStats(window_s=since_s, integrations=self.counts, states=self.states)

    async def ready(self) -> bool:
        return True


class FakeLinks:
    def __init__(self, files: Mapping[str, tuple[str, str, str]] | None = None) -> None:
        self.files = dict(files or {})

    def verify(self, token: str) -> tuple[str, str, str]:
        try:
            return self.files[token]
        except KeyError:
            raise LinkInvalidError("invalid download link") from None


class FakePickTickets:
    def __init__(self) -> None:
        self.charged: list[str] = []
        self.rendered: list[str] = []
        self._cache: dict[RenderKey, RenderedPdf] = {}

    def cached(self, key: RenderKey) -> RenderedPdf | None:
        return self._cache.get(key)

    def charge(self, client: str) -> None:
        self.charged.append(client)

    async def render(self, key: RenderKey, recipe: Mapping[str, Any], *, recipe_url: str) -> RenderedPdf:
        self.rendered.append(recipe_url)
        pdf = self._cache[key] = RenderedPdf.of(b"%PDF-1.4 " + json.dumps(dict(recipe)).encode())
        return pdf


@dataclass
class World:
    """Fakes behind ``ports`` (real limiters and tenants), kept for asserting what the use cases did."""

    tenants: TenantsConfig = field(default_factory=lambda: load_tenants(TENANTS_FILE))
    publisher: FakePublisher = field(default_factory=FakePublisher)
    objects: FakeObjects = field(default_factory=FakeObjects)
    associations: FakeAssociations = field(default_factory=FakeAssociations)
    links: FakeLinks = field(default_factory=FakeLinks)
    pick_tickets: FakePickTickets = field(default_factory=FakePickTickets)
    fan_out: TokenBuckets = field(default_factory=lambda: TokenBuckets(50.0, 5000, max_keys=None))
    failed_keys: FailedKeyThrottle = field(default_factory=lambda: FailedKeyThrottle(0.2, 20))
    key_limits: KeyRateLimiter = field(default_factory=KeyRateLimiter)

    @property
    def ports(self) -> Ports:
        return Ports(
            tenants=self.tenants,
            publisher=self.publisher,
            objects=self.objects,
            associations=self.associations,
            links=self.links,
            key_limits=self.key_limits,
            fan_out=self.fan_out,
            failed_keys=self.failed_keys,
            pick_tickets=self.pick_tickets,
        )

    def with_orders(self, *pages: list[dict[str, Any]]) -> World:
        return replace(self, associations=FakeAssociations(*pages))


def order(order_id: str, *items: tuple[str, str], number: str = "1001") -> dict[str, Any]:
    """An order as the association store answers it: ``items`` are ``(recipe ID, item ID)``."""
    return {
        "orderId": order_id,
        "orderNumber": number,
        "status": "open",
        "items": [{"recipeId": recipe, "itemId": item, "itemQuantity": 1} for recipe, item in items],
    }
