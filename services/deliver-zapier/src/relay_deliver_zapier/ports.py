"""The ports of deliver-zapier: what POSTs the payload to a hook (``adapters.http.HttpHookPoster``)."""

from __future__ import annotations

from typing import Protocol

from relay_deliver_zapier.domain import JsonObject


class HookPoster(Protocol):
    """POSTs JSON to a hook URL; raises ``TransientError`` (429/5xx/network) or ``PermanentError`` (other 4xx)."""

    async def post(self, url: str, payload: JsonObject, *, idempotency_key: str) -> None: ...
