"""Dead letters: PII-free (the Kafka twin of the HTTP allow-list), bounded, and replayable when complete."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

import pytest
from pydantic import ValidationError

from relay_contracts.messages import OrderEventOccurred
from relay_contracts.topics import DELIVERIES_RETRY, ORDERS_EVENTS
from relay_platform.broker import dead_letter_for
from relay_platform.settings import KafkaSettings

PERSONAL = ("Jane Roe", "jane@example.com", "+44 20 7946 0000", "1 Main Street")


@dataclass
class Record:
    topic: str
    value: bytes
    key: bytes | None = b"acme:o-1"
    partition: int = 0
    offset: int = 7


def letter_of(record: Record, max_payload_bytes: int = 256 * 1024) -> tuple[bytes, bool]:
    dead = dead_letter_for(
        record,
        reason="invalid message",
        error_class="ValidationError",
        service="association-store",
        consumer_group="association-store",
        max_payload_bytes=max_payload_bytes,
    )
    assert dead.payload_size == len(record.value)
    assert dead.payload_sha256 == hashlib.sha256(record.value).hexdigest()
    return base64.b64decode(dead.payload_b64), dead.payload_complete


def order_event_with_pii(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "eventId": "e-1",
        "tenant": "acme",
        "type": "created",
        "orderId": "o-1",
        "orderNumber": "1022",
        "occurredAt": "2026-11-20T10:00:00Z",
        "customer": {"name": PERSONAL[0], "email": PERSONAL[1], "phone": PERSONAL[2]},
        "shippingAddress": PERSONAL[3],
        "items": [{"recipeId": "999-1", "itemId": "i-1", "itemQuantity": -3, "note": PERSONAL[0]}],
    }
    return event | overrides


def test_an_order_event_keeps_only_the_fields_its_message_defines() -> None:
    payload, complete = letter_of(Record(ORDERS_EVENTS, json.dumps(order_event_with_pii()).encode()))
    assert complete
    assert not [p for p in PERSONAL if p.encode() in payload]
    kept = json.loads(payload)
    assert set(kept) == {"eventId", "tenant", "type", "orderId", "orderNumber", "occurredAt", "items"}
    assert kept["items"] == [{"recipeId": "999-1", "itemId": "i-1", "itemQuantity": -3}]
    # What is kept is still the message that failed: a replay fails (or succeeds) the same way.
    OrderEventOccurred.model_validate(kept | {"items": [{"recipeId": "r", "itemId": "i", "itemQuantity": 1}]})


def test_a_nested_message_is_pruned_too() -> None:
    retry = {"request": {"deliveryId": "d", "order": {"orderId": "o", "customerEmail": PERSONAL[1]}}, "x": PERSONAL}
    payload, _ = letter_of(Record(DELIVERIES_RETRY, json.dumps(retry).encode()))
    assert json.loads(payload) == {"request": {"deliveryId": "d", "order": {"orderId": "o"}}}


def test_a_clean_message_is_kept_byte_for_byte() -> None:
    clean = {k: v for k, v in order_event_with_pii().items() if k not in {"customer", "shippingAddress", "items"}}
    value = json.dumps(clean, indent=3).encode()
    assert letter_of(Record(ORDERS_EVENTS, value)) == (value, True)


def test_values_that_are_not_a_json_object_keep_only_size_and_hash() -> None:
    for value in (
        b"Jane Roe,jane@example.com,1 Main Street",
        b'["Jane Roe"]',
        b'"jane@example.com"',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,  # deep enough to hit the JSON parser's recursion limit
        b"",
    ):
        assert letter_of(Record(ORDERS_EVENTS, value)) == (b"", False), value[:20]


def test_a_payload_over_the_limit_keeps_only_size_and_hash() -> None:
    value = json.dumps(order_event_with_pii(orderNumber="9" * 5000)).encode()
    assert letter_of(Record(ORDERS_EVENTS, value), max_payload_bytes=1000) == (b"", False)


def test_odd_keys_are_bounded_and_decoded() -> None:
    dead = dead_letter_for(
        Record(ORDERS_EVENTS, b"{}", key=b"\xff" * 5000),
        reason="r" * 10_000,
        error_class="E" * 500,
        service="s",
        consumer_group=None,
        max_payload_bytes=10,
    )
    assert dead.key is not None
    assert len(dead.key) == 1024
    assert len(dead.reason) == 4000
    assert len(dead.error_class) == 200


def test_handler_budgets_must_fit_the_poll_interval() -> None:
    with pytest.raises(ValidationError, match="must stay under max_poll_interval_ms"):
        KafkaSettings(max_poll_interval_ms=60_000, handler_timeout_s=50, transient_backoff_max_s=15)
    assert KafkaSettings(max_poll_interval_ms=60_000, handler_timeout_s=40, transient_backoff_max_s=15)
