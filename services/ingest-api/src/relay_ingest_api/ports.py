"""What the use cases (``service.py``) need from outside, as ``Protocol``s, and ``Ports``, the bundle handed to them.

``main.py`` fills ``Ports`` with the adapters (``adapters/``), the limiters (``ratelimit.py``) and the pick-ticket
renders (``renders.py``); tests fill it with fakes.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from relay_contracts.internal_api import (
    DeliveriesPage,
    DeliveryListStatus,
    IntegrationStats,
    OrderLookupField,
    OrdersPage,
)
from relay_contracts.messages import Message
from relay_platform.objectstore import ObjectStore
from relay_platform.tenants import KeyMatch, TenantsConfig


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event to publish: its topic, the message and its partition key."""

    topic: str
    message: Message
    key: bytes


class Publisher(Protocol):
    """Kafka, durably (acks=all); ``TransientError`` when the broker does not confirm in time."""

    def ensure_connected(self) -> None:
        """Raise ``TransientError`` now when nothing could be published."""

    async def publish(self, records: Sequence[Outgoing]) -> None: ...

    async def ping(self, timeout_s: float) -> bool: ...


class StoreRefusedQueryError(Exception):
    """The association store answered 400: it does not take the query as sent (for a query the API checked
    itself, that is a cursor it does not recognise). ``str()`` is the store's message, which names the parameter."""


class AssociationStore(Protocol):
    """The association store's internal HTTP API (``relay_contracts.internal_api``), always within one tenant.

    Its 400 is a ``StoreRefusedQueryError`` (still an unusable answer, 502, unless the use case knows better); an
    answer that is not the contract is another unusable answer; an unreachable store is a ``TransientError``.
    """

    async def find_orders(self, tenant: str, field: OrderLookupField, value: str, *, after: str | None = None) -> bytes:
        """One page of matching orders: the store's JSON, unchanged."""

    async def audit(self, tenant: str, *, older_than_s: int, limit: int) -> bytes:
        """The tenant's deliveries not ended within ``older_than_s``: the store's JSON, checked, unchanged."""

    def all_orders(self, tenant: str, field: OrderLookupField, value: str) -> AsyncIterator[OrdersPage]:
        """Every page of matching orders, parsed."""

    async def recent_orders(self, tenant: str, *, limit: int, after: str | None) -> bytes:
        """One page of the tenant's orders, newest first: the store's ``OrdersPage`` JSON, checked, unchanged."""

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
        """One page of the tenant's deliveries in ``status``, newest change first: the store's ``DeliveriesPage``
        JSON, checked, unchanged."""

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
        """One page of the tenant's final failures within ``since``..``until`` not replayed yet, newest change first,
        with ``total`` (how many match in all)."""

    async def integration_stats(self, tenant: str, *, since_s: int) -> IntegrationStats:
        """The tenant's deliveries per integration, by status, changed within the last ``since_s`` seconds."""

    async def ready(self) -> bool: ...


class KeyLimits(Protocol):
    def check(self, match: KeyMatch) -> None:
        """Take one token of the API key's rate limit, or raise ``RateLimitedError``."""


class Limits(Protocol):
    def check(self, key: str, cost: int = 1) -> None:
        """Take ``cost`` tokens of ``key``'s bucket, or raise ``RateLimitedError``."""


class FailedKeys(Protocol):
    """Unknown API keys per client address."""

    def check(self, client: str) -> None:
        """Raise ``RateLimitedError`` when ``client`` has used up its failures."""

    def failed(self, client: str) -> None: ...


class LinkVerifier(Protocol):
    def verify(self, token: str) -> tuple[str, str, str]:
        """``(object key, file name, MIME type)`` of a valid, unexpired download link."""


@dataclass(frozen=True, slots=True)
class RenderKey:
    """A recipe version: its ID and the SHA-256 of its stored JSON (a re-save with other bytes is another key)."""

    recipe_id: str
    recipe_sha256: str

    @classmethod
    def of(cls, recipe_id: str, stored_json: bytes) -> RenderKey:
        return cls(recipe_id, hashlib.sha256(stored_json).hexdigest())


@dataclass(frozen=True, slots=True)
class RenderedPdf:
    body: bytes
    etag: str
    """Strong ETag: the quoted SHA-256 of ``body`` (renders are byte-for-byte deterministic)."""

    @classmethod
    def of(cls, body: bytes) -> RenderedPdf:
        return cls(body, f'"{hashlib.sha256(body).hexdigest()}"')

    def matches(self, if_none_match: str | None) -> bool:
        """Whether an ``If-None-Match`` header names this body (weak comparison, as RFC 9110 asks for it)."""
        if not if_none_match:
            return False
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or self.etag in tags


class PickTickets(Protocol):
    """Bounded on-demand pick tickets (``renders.PickTicketRenders``)."""

    def cached(self, key: RenderKey) -> RenderedPdf | None: ...

    def charge(self, client: str) -> None:
        """One render for ``client``, or ``RateLimitedError`` when it has had its share."""

    async def render(self, key: RenderKey, recipe: Mapping[str, Any], *, recipe_url: str) -> RenderedPdf:
        """The PDF for ``key``; ``TransientError`` when no render slot frees in time."""


@dataclass(frozen=True, slots=True)
class Ports:
    """Everything the use cases reach beyond their arguments; one per process."""

    tenants: TenantsConfig
    publisher: Publisher
    objects: ObjectStore
    associations: AssociationStore
    links: LinkVerifier
    key_limits: KeyLimits
    fan_out: Limits
    failed_keys: FailedKeys
    pick_tickets: PickTickets
