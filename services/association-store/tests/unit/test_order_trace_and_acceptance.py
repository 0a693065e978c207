"""Issue 12: an order keeps the trace it was first recorded in (its original trace, for a re-trigger to link to),
and every trigger carries when the suite accepted the event behind it (the order-to-delivered clock starts there)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from association_store_factories import MemoryStore, Published, at, order_event, recipe_saved, unique

from relay_association_store import domain, service
from relay_association_store.adapters import http
from relay_platform.tenants import TenantsConfig

FIRST = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
LATER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_a_new_order_keeps_the_trace_of_its_first_event_and_later_events_never_replace_it(
    tenants: TenantsConfig,
) -> None:
    store, published = MemoryStore(), Published()
    order_id = unique("O")
    created = order_event("created", order_id, [("ACME-1", "i1", 1)], minutes=1)
    await service.record_order_event(created, tenants, store, published, trace_parent=FIRST)
    updated = order_event("updated", order_id, [("ACME-1", "i1", 3)], minutes=2)
    await service.record_order_event(updated, tenants, store, published, trace_parent=LATER)
    linked = order_event("linked", order_id, [("ACME-2", "i2", 1)], minutes=3)
    await service.record_order_event(linked, tenants, store, published, trace_parent=LATER)
    cancelled = order_event("cancelled", order_id, minutes=4)
    await service.record_order_event(cancelled, tenants, store, published, trace_parent=LATER)

    order = store.orders[("acme", order_id)]
    assert (order.status, order.items["i1"].quantity, set(order.items)) == ("cancelled", 3, {"i1", "i2"})
    assert order.trace_parent == FIRST


async def test_an_order_first_read_without_a_span_has_no_trace_and_a_later_one_does_not_invent_it(
    tenants: TenantsConfig,
) -> None:
    store, published = MemoryStore(), Published()
    order_id = unique("O")
    await service.record_order_event(order_event("linked", order_id, [("ACME-1", "i1", 1)]), tenants, store, published)
    assert store.orders[("acme", order_id)].trace_parent is None
    # A later trace is not the order's original one: linking to it would send a reader to the wrong trace.
    later = order_event("created", order_id, [("ACME-1", "i1", 2)], minutes=1)
    await service.record_order_event(later, tenants, store, published, trace_parent=LATER)
    assert store.orders[("acme", order_id)].trace_parent is None


def test_a_stale_or_resent_event_leaves_the_trace_as_it_is() -> None:
    first = order_event("created", "O1", [("ACME-1", "i1", 1)], minutes=5)
    change = domain.apply_order_event(None, first, trace_parent=FIRST)
    assert change.after.trace_parent == FIRST
    stale = domain.apply_order_event(change.after, order_event("cancelled", "O1", minutes=1), trace_parent=LATER)
    assert (stale.applied, stale.after.trace_parent) == (False, FIRST)
    resent = domain.apply_order_event(change.after, first, trace_parent=LATER)
    assert (resent.applied, resent.after.trace_parent) == (False, FIRST)


async def test_every_order_trigger_carries_when_the_event_was_accepted(tenants: TenantsConfig) -> None:
    store, published = MemoryStore(), Published()
    accepted = datetime(2026, 12, 1, 9, 30, 0, 123000, tzinfo=UTC)
    event = order_event("created", unique("O"), [("ACME-1", "i1", 1), ("ACME-2", "i2", 1)], minutes=1)
    triggers = await service.record_order_event(event, tenants, store, published, accepted_at=accepted)
    assert len(triggers) == 2
    assert [trigger.accepted_at for trigger in published.messages] == [accepted, accepted]
    # The wire carries it too (the bundle-builder reads it from there).
    assert type(triggers[0]).model_validate_json(triggers[0].model_dump_json()).accepted_at == accepted


async def test_the_raw_recipe_feed_trigger_carries_when_the_recipe_was_accepted(tenants: TenantsConfig) -> None:
    store, published = MemoryStore(), Published()
    trigger = await service.record_recipe_saved(recipe_saved("ACME-9"), tenants, store, published, accepted_at=at(7))
    assert trigger is not None
    assert trigger.accepted_at == at(7)


async def test_without_an_acceptance_time_the_triggers_say_none(tenants: TenantsConfig) -> None:
    triggers = await service.record_order_event(
        order_event("linked", unique("O"), [("ACME-1", "i1", 1)]), tenants, MemoryStore(), Published()
    )
    assert [trigger.accepted_at for trigger in triggers] == [None]


def test_a_record_timestamp_is_the_acceptance_time() -> None:
    assert domain.accepted_at_of(1_764_581_400_123) == datetime(2025, 12, 1, 9, 30, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize("timestamp_ms", [None, -1, 0, -1_000_000, 10**20])
def test_a_record_without_a_usable_timestamp_has_no_acceptance_time_never_1970(timestamp_ms: int | None) -> None:
    # Kafka's "no timestamp" is -1; 0 is what an odd producer leaves; past datetime's range is no time at all.
    assert domain.accepted_at_of(timestamp_ms) is None


def _view(trace_parent: str | None) -> domain.OrderView:
    order = domain.OrderState(
        tenant="acme",
        order_id="O1",
        order_number="1001",
        status="open",
        status_at=at(1),
        items_at=at(1),
        updated_at=at(1),
        trace_parent=trace_parent,
    )
    return domain.OrderView(order=order, deliveries=())


def test_the_lookup_answer_names_the_orders_original_trace() -> None:
    wire = http.found_order(_view(FIRST)).model_dump(mode="json")
    assert wire["traceParent"] == FIRST
    assert http.found_order(_view(None)).model_dump(mode="json")["traceParent"] is None


@pytest.mark.parametrize("stored", ["not-a-trace", "00-" + "A" * 32 + "-" + "b" * 16 + "-01", "x" * 4000])
def test_a_stored_value_that_is_no_traceparent_is_answered_as_unknown_not_an_error(stored: str) -> None:
    assert http.found_order(_view(stored)).trace_parent is None
