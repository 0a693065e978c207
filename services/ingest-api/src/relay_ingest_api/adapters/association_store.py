"""Client of the association store's internal HTTP API (order lookups, the delivery audit, readiness)."""

from __future__ import annotations

import aiohttp
from pydantic import ValidationError

from relay_ingest_api.schemas import AuditReport, OrdersFound
from relay_platform.errors import TransientError

LOOKUP_PATH = "/internal/v1/orders"
AUDIT_PATH = "/internal/v1/audit"


class UpstreamError(TransientError):
    """The association store answered, but not with something we can relay."""


class AssociationStoreClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, retry_after_s: int) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._retry_after_s = retry_after_s

    async def _get(self, path: str, params: dict[str, str]) -> bytes:
        try:
            async with self._session.get(self._base_url + path, params=params) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise TransientError("association store unreachable", retry_after_s=self._retry_after_s) from error
        if status == 200:
            return body
        if status >= 500:
            raise TransientError(f"association store answered {status}", retry_after_s=self._retry_after_s)
        raise UpstreamError(f"association store answered {status}")

    async def find_orders(self, tenant: str, field: str, value: str) -> bytes:
        """The store's JSON answer, unchanged; the tenant is always the caller's, never the client's input."""
        return await self._get(LOOKUP_PATH, {"tenant": tenant, field: value})

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

    async def orders(self, tenant: str, field: str, value: str) -> OrdersFound:
        """The store's answer parsed (for manual triggers); an unreadable one is an ``UpstreamError``."""
        body = await self.find_orders(tenant, field, value)
        try:
            return OrdersFound.model_validate_json(body)
        except ValidationError as error:
            raise UpstreamError("association store answered an unreadable order list") from error

    async def ready(self) -> bool:
        try:
            async with self._session.get(self._base_url + "/readyz") as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False
