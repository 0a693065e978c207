"""``relay trigger``: ask the ingest API to re-run bundle and delivery for an order or a recipe (seed 000).

The API key goes only into the ``Authorization`` header: it is never printed, logged or put in a URL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

DEFAULT_API_URL = "http://127.0.0.1:8080"
TRIGGER_PATH = "/api/v2/integrations/trigger"

Criterion = Literal["recipeId", "orderId", "orderNumber"]


class TriggerFailedError(Exception):
    """The trigger did not happen; the message is the API's own explanation (safe to print)."""


@dataclass(frozen=True, slots=True)
class Triggered:
    trigger_id: str
    feed: str
    recipe_id: str
    order_id: str | None
    order_number: str | None
    item_id: str | None
    integration_ids: tuple[str, ...]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def api_error_message(status: int, body: str, retry_after: str | None = None) -> str:
    """``HTTP 400 invalid_fields: message (/pointer: problem; ...)`` from the API's JSON error body."""
    try:
        document: Any = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        return f"HTTP {status}: the API answered without a JSON error body"
    text = f"HTTP {status} {document.get('error', 'error')}: {document.get('message', '')}".rstrip(": ")
    problems = document.get("problems")
    if isinstance(problems, list) and problems:
        details = "; ".join(
            f"{p.get('pointer') or '/'}: {p.get('message', '')}" for p in problems if isinstance(p, dict)
        )
        text += f" ({details})"
    if retry_after:
        text += f"; retry after {retry_after} s"
    return text


def parse_triggers(document: object) -> list[Triggered]:
    """The ``triggers`` of a 202 answer."""
    triggers = document.get("triggers") if isinstance(document, dict) else None
    if not isinstance(triggers, list):
        raise TriggerFailedError("the API answered 202 without a trigger list")
    result = []
    for entry in triggers:
        if not isinstance(entry, dict) or not isinstance(entry.get("triggerId"), str):
            raise TriggerFailedError("the API answered 202 with an unreadable trigger")
        ids = entry.get("integrationIds")
        result.append(
            Triggered(
                trigger_id=entry["triggerId"],
                feed=_text(entry.get("feed")) or ("order" if entry.get("orderId") else "recipe"),
                recipe_id=_text(entry.get("recipeId")) or "",
                order_id=_text(entry.get("orderId")),
                order_number=_text(entry.get("orderNumber")),
                item_id=_text(entry.get("itemId")),
                integration_ids=tuple(str(i) for i in ids) if isinstance(ids, list) else (),
            )
        )
    return result


async def call_api(
    method: Literal["GET", "POST"],
    url: str,
    api_key: str,
    *,
    expect: int,
    error: type[Exception],
    json_body: object = None,
    params: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> object:
    """One call of the ingest API with the operator's key: the decoded JSON of an ``expect`` answer, else
    ``error`` with the API's own message (status, error code, ``Retry-After``)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.request(
                method, url, json=json_body, params=params, headers={"Authorization": f"Bearer {api_key}"}
            ) as response,
        ):
            status = response.status
            text = await response.text(errors="replace")
            retry_after = response.headers.get("Retry-After")
    except (aiohttp.ClientError, TimeoutError) as failure:
        base = url.split("/api/", 1)[0]
        raise error(f"cannot reach the API at {base}: {type(failure).__name__}") from failure
    if status != expect:
        raise error(api_error_message(status, text, retry_after))
    try:
        document: object = json.loads(text)
    except ValueError as failure:
        raise error(f"the API answered {expect} without JSON") from failure
    return document


async def trigger_integrations(
    api_url: str,
    api_key: str,
    criterion: Criterion,
    value: str,
    integration_ids: Sequence[str] = (),
    *,
    timeout_s: float = 30.0,
) -> list[Triggered]:
    """``POST /api/v2/integrations/trigger``; raises ``TriggerFailedError`` with the API's message."""
    body: dict[str, object] = {criterion: value}
    if integration_ids:
        body["integrationIds"] = list(integration_ids)
    url = api_url.rstrip("/") + TRIGGER_PATH
    document = await call_api(
        "POST", url, api_key, expect=202, json_body=body, timeout_s=timeout_s, error=TriggerFailedError
    )
    return parse_triggers(document)
