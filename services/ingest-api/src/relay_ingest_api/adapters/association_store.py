"""Client of the association store's internal HTTP API (``relay_contracts.internal_api``): order lookups, the
delivery audit, readiness. Implements ``ports.AssociationStore``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from pydantic import SecretStr, ValidationError

from relay_contracts.internal_api import AUDIT_PATH, ORDERS_PATH, AuditReport, OrderLookupField, OrdersPage
from relay_platform.errors import TransientError


class UpstreamError(TransientError):
    """The association store answered, but not with something we can relay."""


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

    async def ready(self) -> bool:
        try:
            async with self._session.get(self._base_url + "/readyz") as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False
