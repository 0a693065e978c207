"""Client of the association store's internal HTTP API (``relay_contracts.internal_api``): order lookups, the
delivery audit, the console's lists and counts, readiness. Implements ``ports.AssociationStore``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
from pydantic import SecretStr, ValidationError

from relay_contracts.internal_api import (
    AUDIT_PATH,
    DELIVERIES_PATH,
    INTEGRATION_STATS_PATH,
    ORDERS_PATH,
    RECENT_ORDERS_PATH,
    ApiError,
    AuditReport,
    DeliveriesPage,
    DeliveryListStatus,
    IntegrationStats,
    OrderLookupField,
    OrdersPage,
)
from relay_ingest_api.ports import StoreRefusedQueryError
from relay_platform.errors import TransientError

MAX_LOGGED_MESSAGE = 200
"""Characters of the store's own 400 message kept (for the log only; never answered to the caller)."""


class UpstreamError(TransientError):
    """The association store answered, but not with something we can relay."""


class RefusedQueryError(UpstreamError, StoreRefusedQueryError):
    """The store answered 400. An unusable answer (502) unless the use case maps it to the caller's parameter."""


def _refusal_message(body: bytes) -> str:
    try:
        message = ApiError.model_validate_json(body).message
    except ValidationError:
        return "association store answered 400"
    return "association store answered 400: " + message[:MAX_LOGGED_MESSAGE]


def _instant(moment: datetime) -> str:
    """RFC 3339 in UTC, as the internal API takes instants."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class AssociationStoreClient:
    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, *, retry_after_s: int, token: SecretStr | None = None
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._retry_after_s = retry_after_s
        # Sent with every /internal/ request (the open probe does not get it); never logged.
        self._headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}

    async def _get(self, path: str, params: dict[str, str]) -> bytes:
        try:
            async with self._session.get(self._base_url + path, params=params, headers=self._headers) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise TransientError("association store unreachable", retry_after_s=self._retry_after_s) from error
        if status == 200:
            return body
        if status >= 500:
            raise TransientError(f"association store answered {status}", retry_after_s=self._retry_after_s)
        if status == 400:
            raise RefusedQueryError(_refusal_message(body))
        if status == 401:
            raise UpstreamError(
                "association store refused our token (401): INGEST_API_ASSOCIATION_STORE_TOKEN must equal its "
                "ASSOCIATION_STORE_API_TOKEN"
            )
        raise UpstreamError(f"association store answered {status}")

    async def find_orders(self, tenant: str, field: OrderLookupField, value: str, *, after: str | None = None) -> bytes:
        """The store's JSON answer (one page, ``next`` names the following one), unchanged; the tenant is always
        the caller's, never the client's input."""
        params = {"tenant": tenant, field: value}
        if after is not None:
            params["after"] = after
        return await self._get(ORDERS_PATH, params)

    async def audit(self, tenant: str, *, older_than_s: int, limit: int) -> bytes:
        """The tenant's deliveries not ended within ``older_than_s`` (the store's JSON, checked, unchanged)."""
        body = await self._get(AUDIT_PATH, {"tenant": tenant, "olderThanS": str(older_than_s), "limit": str(limit)})
        try:
            report = AuditReport.model_validate_json(body)
        except ValidationError as error:
            raise UpstreamError("association store answered an unreadable audit") from error
        if report.tenant != tenant:
            raise UpstreamError("association store answered the audit of another tenant")
        return body

    async def orders(self, tenant: str, field: OrderLookupField, value: str, *, after: str | None = None) -> OrdersPage:
        """One page of the store's answer parsed (for manual triggers); an unreadable one is an ``UpstreamError``."""
        body = await self.find_orders(tenant, field, value, after=after)
        try:
            return OrdersPage.model_validate_json(body)
        except ValidationError as error:
            raise UpstreamError("association store answered an unreadable order list") from error

    async def all_orders(self, tenant: str, field: OrderLookupField, value: str) -> AsyncIterator[OrdersPage]:
        """Every page of matching orders, in order; a store that pages backwards is an ``UpstreamError``."""
        after: str | None = None
        while True:
            page = await self.orders(tenant, field, value, after=after)
            yield page
            if page.next is None:
                return
            if page.next == after:
                raise UpstreamError("association store repeated a page")
            after = page.next

    async def recent_orders(self, tenant: str, *, limit: int, after: str | None) -> bytes:
        """The tenant's orders, newest first (one page; ``next`` is the cursor of the following one): the store's
        JSON, checked, unchanged."""
        params = {"tenant": tenant, "limit": str(limit)}
        if after is not None:
            params["after"] = after
        body = await self._get(RECENT_ORDERS_PATH, params)
        try:
            OrdersPage.model_validate_json(body)
        except ValidationError as error:
            raise UpstreamError("association store answered an unreadable recent-order list") from error
        return body

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
        """The tenant's deliveries in ``status``, newest change first (one page): the store's JSON, checked,
        unchanged."""
        body, _ = await self._delivery_list(
            tenant, status=status, integration=integration, since=since, until=until, limit=limit, after=after
        )
        return body

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
        """One page of the tenant's final failures in the window that no replay re-sent yet, newest change first,
        with how many match in all; parsed."""
        _, page = await self._delivery_list(
            tenant,
            status="failed",
            integration=integration,
            since=since,
            until=until,
            limit=limit,
            after=after,
            extra={"replayed": "false", "withTotal": "true"},
        )
        if page.total is None:
            raise UpstreamError("association store did not count the replay's selection")
        return page

    async def _delivery_list(
        self,
        tenant: str,
        *,
        status: DeliveryListStatus,
        integration: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        after: str | None,
        extra: dict[str, str] | None = None,
    ) -> tuple[bytes, DeliveriesPage]:
        """One page of ``DELIVERIES_PATH``: the store's JSON as it came, and parsed (an unreadable one is an
        ``UpstreamError``)."""
        params = {"tenant": tenant, "status": status, "limit": str(limit), **(extra or {})}
        optional = {
            "integration": integration,
            "since": None if since is None else _instant(since),
            "until": None if until is None else _instant(until),
            "after": after,
        }
        params.update({name: value for name, value in optional.items() if value is not None})
        body = await self._get(DELIVERIES_PATH, params)
        try:
            return body, DeliveriesPage.model_validate_json(body)
        except ValidationError as error:
            raise UpstreamError("association store answered an unreadable delivery list") from error

    async def integration_stats(self, tenant: str, *, since_s: int) -> IntegrationStats:
        """The tenant's deliveries per integration by status, changed within ``since_s`` seconds, parsed."""
        body = await self._get(INTEGRATION_STATS_PATH, {"tenant": tenant, "sinceS": str(since_s)})
        try:
            return IntegrationStats.model_validate_json(body)
        except ValidationError as error:
            raise UpstreamError("association store answered unreadable integration counts") from error

    async def ready(self) -> bool:
        try:
            async with self._session.get(self._base_url + "/readyz") as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False
