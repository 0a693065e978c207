"""Pure rules: an order's status by occurredAt (the association store's rule) and every final word on a delivery."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from relay_contracts.messages import DeliverBundle, OrderEventOccurred, OrderEventType
from relay_retry.domain import (
    ORDER_CANCELLED,
    UNREADABLE_RETRY,
    OrderState,
    ScheduledRetry,
    StoredRetry,
    cancellable_order_id,
    cancelled_give_up,
    due_action,
    invalid_command_give_up,
    order_status_after,
    unpublishable_give_up,
    unreadable_give_up,
)

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
HOSTILE_ORDER = "ü" * 64 + "订" * 64  # 128 characters, none ASCII


def event(kind: OrderEventType, at: datetime, *, order_id: str = "o1", tenant: str = "rt") -> OrderEventOccurred:
    return OrderEventOccurred(
        event_id=f"{kind}-{at.isoformat()}", tenant=tenant, type=kind, order_id=order_id, order_number="1022",
        occurred_at=at,
    )  # fmt: skip


def state(status: str, at: datetime, *, order_id: str = "o1") -> OrderState:
    assert status in ("open", "cancelled", "refunded", "returned")
    return OrderState("rt", order_id, status, at)  # type: ignore[arg-type]


def request(attempt: int = 2, *, reason: str = "order_created", order_id: str | None = "o1") -> DeliverBundle:
    return DeliverBundle.model_validate(
        {
            "deliveryId": "d1",
            "triggerId": "t1",
            "tenant": "rt",
            "integrationId": "fast-hook",
            "integrationType": "zapier",
            "recipeId": "999-abc",
            "feed": "order" if order_id else "recipe",
            "reason": reason,
            "order": {"orderId": order_id, "orderNumber": "1022", "itemId": "1"} if order_id else None,
            "attempt": attempt,
            "files": [{"name": "r.json", "mimeType": "application/json", "size": 2, "sha256": "0" * 64, "key": "k"}],
            "requestedAt": T0.isoformat(),
        }
    )


# --- an order's status by occurredAt ---------------------------------------------------------------------------


def test_first_cancellation_of_an_unknown_order_cancels_it() -> None:
    assert order_status_after(None, event("cancelled", T0)) == state("cancelled", T0)


def test_cancellation_older_than_the_known_status_is_ignored() -> None:
    reopened = state("open", T0)
    assert order_status_after(reopened, event("cancelled", T0 - timedelta(microseconds=1))) is None


def test_created_after_the_cancellation_reopens_the_order() -> None:
    after = order_status_after(state("cancelled", T0), event("created", T0 + timedelta(seconds=1)))
    assert after == state("open", T0 + timedelta(seconds=1))
    assert not after.refuses_retries


def test_created_older_than_the_cancellation_does_not_reopen_it() -> None:
    assert order_status_after(state("cancelled", T0), event("created", T0 - timedelta(seconds=1))) is None


@pytest.mark.parametrize("kind", ["updated", "linked"])
def test_updates_and_links_never_change_the_status_as_in_the_association_store(kind: OrderEventType) -> None:
    assert order_status_after(state("cancelled", T0), event(kind, T0 + timedelta(days=1))) is None
    assert order_status_after(None, event(kind, T0)) is None


def test_repeated_cancellation_keeps_the_first_status_time() -> None:
    assert order_status_after(state("cancelled", T0), event("cancelled", T0 + timedelta(hours=1))) is None


def test_a_different_status_at_the_same_instant_wins_as_in_the_association_store() -> None:
    assert order_status_after(state("open", T0), event("cancelled", T0)) == state("cancelled", T0)


def test_refund_after_a_cancellation_replaces_it_as_in_the_association_store() -> None:
    after = order_status_after(state("cancelled", T0), event("refunded", T0 + timedelta(seconds=1)))
    assert after is not None
    assert not after.refuses_retries


def test_occurred_at_is_compared_as_an_instant_whatever_the_offsets() -> None:
    # The extremes a message may carry (years 0001-9998 in UTC), written with the most distant offsets.
    latest = datetime(9998, 12, 30, 23, 59, tzinfo=timezone(-timedelta(hours=23, minutes=59)))
    earliest = datetime(1, 1, 2, tzinfo=timezone(timedelta(hours=23, minutes=59)))
    assert order_status_after(state("open", latest), event("cancelled", earliest)) is None
    cancelled = order_status_after(state("open", earliest), event("cancelled", latest))
    assert cancelled == state("cancelled", latest)
    # The same instant written with two offsets: not older, so a different status applies.
    plus14 = T0.astimezone(timezone(timedelta(hours=14)))
    minus12 = T0.astimezone(timezone(timedelta(hours=-12)))
    assert order_status_after(state("open", plus14), event("cancelled", minus12 - timedelta(microseconds=1))) is None
    assert order_status_after(state("open", plus14), event("cancelled", minus12)) is not None


def test_orders_are_told_apart_by_tenant_in_the_state() -> None:
    other = order_status_after(None, event("cancelled", T0, tenant="rt2"))
    assert other is not None
    assert (other.tenant, other.order_id) == ("rt2", "o1")


# --- which deliveries a cancellation stops ---------------------------------------------------------------------


def test_manufacturing_deliveries_are_cancellable_and_order_notices_are_not() -> None:
    assert cancellable_order_id(request(order_id=HOSTILE_ORDER)) == HOSTILE_ORDER
    assert cancellable_order_id(request(reason="order_cancelled")) is None
    assert cancellable_order_id(request(order_id=None, reason="recipe_saved")) is None


# --- the final word --------------------------------------------------------------------------------------------


def test_a_cancelled_order_ends_the_delivery_with_the_last_attempt_made() -> None:
    cancelled_at = datetime(2026, 11, 22, 8, 30, tzinfo=timezone(timedelta(hours=-5)))
    give_up = cancelled_give_up(request(attempt=3, order_id=HOSTILE_ORDER), state("cancelled", cancelled_at), now=NOW)
    outcome = give_up.outcome
    assert (outcome.status, outcome.final, outcome.attempt) == ("failed", True, 2)
    assert outcome.error_class == ORDER_CANCELLED
    assert outcome.error_message == "order 1022 was cancelled at 2026-11-22T08:30:00-05:00, so attempt 3 was not made"
    assert (outcome.delivery_id, outcome.integration_id, outcome.occurred_at) == ("d1", "fast-hook", NOW)
    assert outcome.order is not None
    assert outcome.order.order_id == HOSTILE_ORDER
    assert outcome.files == ("r.json",)
    assert give_up.dead_letter is None


def test_a_request_the_broker_refuses_for_good_ends_with_a_replayable_dead_letter() -> None:
    retry = ScheduledRetry(request=request(attempt=2), due_at=T0)
    give_up = unpublishable_give_up(retry, "MessageSizeTooLargeError", "too big", now=NOW)
    assert (give_up.outcome.status, give_up.outcome.final, give_up.outcome.attempt) == ("failed", True, 1)
    assert give_up.outcome.error_class == "MessageSizeTooLargeError"
    assert give_up.outcome.error_message is not None
    assert "deliveries.requested.zapier.v1" in give_up.outcome.error_message
    assert give_up.dead_letter is not None
    replay = DeliverBundle.model_validate_json(base64.b64decode(give_up.dead_letter.payload_b64))
    assert replay == retry.request.model_copy(update={"attempt": 1})


def stored(request_json: str, *, order: OrderState | None = None) -> StoredRetry:
    try:
        parsed: ScheduledRetry | None = ScheduledRetry(DeliverBundle.model_validate_json(request_json), T0)
    except ValueError:
        parsed = None
    return StoredRetry(
        delivery_id="d1", attempt=3, tenant="rt", order_id="o1", integration_type="zapier", recipe_id="999-abc",
        request_json=request_json, retry=parsed, order=order,
    )  # fmt: skip


def test_a_due_row_is_re_requested_while_its_order_is_open() -> None:
    row = stored(request(attempt=3).model_dump_json(), order=state("open", T0))
    assert due_action(row, now=NOW) == row.retry


def test_a_due_row_of_a_cancelled_order_ends_instead_of_being_sent() -> None:
    action = due_action(stored(request(attempt=3).model_dump_json(), order=state("cancelled", T0)), now=NOW)
    assert not isinstance(action, ScheduledRetry)
    assert (action.outcome.error_class, action.outcome.attempt) == (ORDER_CANCELLED, 2)


def test_a_row_from_an_older_contract_ends_with_what_can_still_be_read() -> None:
    newer = json.loads(request(attempt=3).model_dump_json()) | {"schemaVersion": 2, "integrationId": "hook-7"}
    action = due_action(stored(json.dumps(newer)), now=NOW)
    assert not isinstance(action, ScheduledRetry)
    outcome = action.outcome
    assert (outcome.status, outcome.final, outcome.attempt, outcome.error_class) == (
        "failed",
        True,
        2,
        UNREADABLE_RETRY,
    )
    assert (outcome.integration_id, outcome.trigger_id, outcome.reason) == ("hook-7", "t1", "order_created")
    assert outcome.files == ("r.json",)
    assert action.dead_letter is not None
    assert base64.b64decode(action.dead_letter.payload_b64) == json.dumps(newer).encode()


@pytest.mark.parametrize("raw", ["not json", "[]", '{"integrationId": "", "feed": "elsewhere", "order": 7}'])
def test_a_row_that_is_not_even_json_still_ends_its_delivery(raw: str) -> None:
    give_up = unreadable_give_up(stored(raw), now=NOW)
    assert (give_up.outcome.delivery_id, give_up.outcome.tenant, give_up.outcome.final) == ("d1", "rt", True)
    assert give_up.outcome.integration_id == "unknown"
    assert give_up.outcome.order is not None
    assert give_up.outcome.order.order_id == "o1"


def test_an_invalid_retry_command_with_a_readable_request_ends_that_delivery() -> None:
    body = json.dumps({"request": json.loads(request(attempt=2).model_dump_json()), "errorClass": "x" * 999})
    give_up = invalid_command_give_up(body.encode(), "errorClass: too long", now=NOW)
    assert give_up is not None
    assert (give_up.outcome.delivery_id, give_up.outcome.attempt, give_up.outcome.final) == ("d1", 2, True)
    assert invalid_command_give_up(b'{"request": {"deliveryId": "d1"}}', "bad", now=NOW) is None
    assert invalid_command_give_up(b"\xff", "bad", now=NOW) is None
    assert invalid_command_give_up(b"[1]", "bad", now=NOW) is None
