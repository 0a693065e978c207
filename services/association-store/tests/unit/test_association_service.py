"""domain.py and service.py: which integrations fire (raw vs order feed), ordering and idempotency of order events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from association_store_factories import (
    MemoryStore,
    Published,
    at,
    delivery_attempted,
    order_event,
    recipe_saved,
    triggered,
    unique,
)

from relay_association_store import domain, service
from relay_contracts.messages import IntegrationsTriggered, OrderEventType, stable_id
from relay_platform.errors import PermanentError, TransientError
from relay_platform.tenants import TenantsConfig


def test_raw_feed_fires_enabled_recipe_integrations_only(tenants: TenantsConfig) -> None:
    trigger = domain.recipe_trigger(tenants.tenants["acme"], recipe_saved("ACME-1"))
    assert trigger is not None
    assert trigger.integration_ids == ("raw-email", "raw-s3")  # not order-only ones, not the disabled one
    assert (trigger.feed, trigger.reason, trigger.recipe_key) == ("recipe", "recipe_saved", "recipes/acme/ACME-1.json")
    assert trigger.order is None


def test_temporary_recipe_skips_integrations_that_exclude_temporary_recipes(tenants: TenantsConfig) -> None:
    trigger = domain.recipe_trigger(tenants.tenants["acme"], recipe_saved("ACME-2", temporary=True))
    assert trigger is not None
    assert trigger.integration_ids == ("raw-s3",)


def test_no_matching_integration_means_no_trigger(tenants: TenantsConfig) -> None:
    assert tenants.tenants["acme"].order_feed("linked") == ("orders-sftp",)
    assert tenants.tenants["globex"].recipe_feed(temporary=True) == ("everything-email",)
    config = TenantsConfig.model_validate({"tenants": {"bare": {"recipe-prefix": "B"}}})
    assert domain.recipe_trigger(config.tenants["bare"], recipe_saved("B-1", tenant="bare")) is None


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("linked", ("orders-sftp",)),
        ("created", ("orders-sftp", "orders-zapier")),
        ("updated", ("orders-zapier",)),
        ("cancelled", ("orders-sftp",)),
        ("refunded", ("orders-zapier",)),
        ("returned", ("orders-zapier",)),
    ],
)
def test_order_feed_respects_each_integrations_order_events(
    tenants: TenantsConfig, event_type: OrderEventType, expected: tuple[str, ...]
) -> None:
    assert tenants.tenants["acme"].order_feed(event_type) == expected


def test_linked_event_creates_open_order_and_one_trigger_per_item(tenants: TenantsConfig) -> None:
    event = order_event("linked", "O1", [("ACME-1", "i1", 2), ("ACME-2", "i2", 1)], order_number="1022")
    change = domain.apply_order_event(None, event)
    assert change.applied
    assert change.after.status == "open"
    assert change.after.order_number == "1022"
    triggers = domain.order_triggers(tenants.tenants["acme"], event, change)
    assert [(t.recipe_id, t.order and t.order.item_id) for t in triggers] == [("ACME-1", "i1"), ("ACME-2", "i2")]
    first = triggers[0]
    assert first.reason == "order_linked"
    assert first.feed == "order"
    assert first.integration_ids == ("orders-sftp",)
    # Always the tenant's own key, derived from tenant and recipe ID: never one a message named.
    assert first.recipe_key == "recipes/acme/ACME-1.json"
    assert triggers[1].recipe_key == "recipes/acme/ACME-2.json"
    assert first.order is not None
    assert (first.order.order_number, first.order.item_quantity, first.order.status) == ("1022", 2, "open")
    assert first.trigger_id == stable_id(event.event_id, "ACME-1", "i1")


def test_event_older_than_stored_status_changes_nothing() -> None:
    created = domain.apply_order_event(None, order_event("created", "O1", [("ACME-1", "i1", 1)], minutes=1))
    cancelled = domain.apply_order_event(created.after, order_event("cancelled", "O1", minutes=10))
    assert cancelled.after.status == "cancelled"
    late_update = domain.apply_order_event(
        cancelled.after, order_event("created", "O1", [("ACME-9", "i9", 5)], minutes=5)
    )
    assert late_update.stale
    assert not late_update.applied
    assert late_update.after == cancelled.after


def test_stale_item_list_does_not_overwrite_newer_quantities() -> None:
    first = domain.apply_order_event(None, order_event("updated", "O1", [("ACME-1", "i1", 3)], minutes=10))
    older = domain.apply_order_event(first.after, order_event("updated", "O1", [("ACME-1", "i1", 1)], minutes=2))
    assert older.stale
    assert first.after.items["i1"].quantity == 3


def test_link_older_than_the_items_link_is_ignored() -> None:
    linked = domain.apply_order_event(None, order_event("linked", "O1", [("ACME-1", "i1", 2)], minutes=10))
    stale = domain.apply_order_event(linked.after, order_event("linked", "O1", [("ACME-1", "i1", 7)], minutes=3))
    assert stale.stale
    assert not stale.applied
    assert stale.after.items["i1"].quantity == 2


def test_link_superseded_by_a_later_full_item_list_does_not_resurrect_a_removed_item() -> None:
    state = domain.apply_order_event(None, order_event("linked", "O1", [("ACME-1", "i1", 1)], minutes=1)).after
    state = domain.apply_order_event(state, order_event("updated", "O1", [("ACME-2", "i2", 1)], minutes=5)).after
    assert set(state.items) == {"i2"}
    late = domain.apply_order_event(state, order_event("linked", "O1", [("ACME-1", "i1", 1)], minutes=2))
    assert late.stale
    assert set(late.after.items) == {"i2"}


def test_created_keeps_items_linked_after_it_and_replaces_older_ones() -> None:
    state = domain.apply_order_event(None, order_event("linked", "O1", [("ACME-1", "i1", 1)], minutes=1)).after
    state = domain.apply_order_event(state, order_event("linked", "O1", [("ACME-3", "i3", 1)], minutes=9)).after
    change = domain.apply_order_event(state, order_event("created", "O1", [("ACME-2", "i2", 4)], minutes=5))
    assert change.applied
    assert set(change.after.items) == {"i2", "i3"}
    assert [item.item_id for item in change.affected] == ["i2", "i3"]


def test_resend_of_the_same_content_fires_nothing() -> None:
    created = order_event("created", "O1", [("ACME-1", "i1", 2)], minutes=1)
    state = domain.apply_order_event(None, created).after
    resent = order_event("created", "O1", [("ACME-1", "i1", 2)], minutes=1)  # new event ID, same content
    again = domain.apply_order_event(state, resent)
    assert not again.applied
    assert not again.stale
    relink = domain.apply_order_event(state, order_event("linked", "O1", [("ACME-1", "i1", 2)], minutes=3))
    assert not relink.applied


def test_status_events_trigger_every_item_with_the_new_status(tenants: TenantsConfig) -> None:
    state = domain.apply_order_event(
        None, order_event("linked", "O1", [("ACME-1", "i1", 1), ("ACME-2", "i2", 1)], minutes=1)
    ).after
    event = order_event("refunded", "O1", minutes=2)
    change = domain.apply_order_event(state, event)
    triggers = domain.order_triggers(tenants.tenants["acme"], event, change)
    assert [t.integration_ids for t in triggers] == [("orders-zapier",), ("orders-zapier",)]
    assert {t.order.status for t in triggers if t.order} == {"refunded"}
    assert {t.reason for t in triggers} == {"order_refunded"}


@pytest.mark.parametrize("late", ["linked", "updated"])
def test_cancelled_order_is_not_sent_to_manufacturing_again(tenants: TenantsConfig, late: OrderEventType) -> None:
    tenant = tenants.tenants["acme"]
    state = domain.apply_order_event(None, order_event("linked", "O1", [("ACME-1", "i1", 1)], minutes=1)).after
    state = domain.apply_order_event(state, order_event("cancelled", "O1", minutes=3)).after
    event = order_event(late, "O1", [("ACME-1", "i1", 5)], minutes=2 if late == "updated" else 4)
    change = domain.apply_order_event(state, event)
    assert change.after.status == "cancelled"
    assert tenant.order_feed(late)
    assert domain.order_triggers(tenant, event, change) == ()


def test_delivery_outcome_is_never_regressed_by_a_late_older_attempt() -> None:
    first = domain.merge_delivery(
        None,
        now=at(1),
        outcome=delivery_attempted(
            "d1",
            recipe_id="ACME-1",
            order_id="O1",
            attempt=1,
            status="retrying",
            final=False,
            error=("TimeoutError", "connect timed out"),
        ),
    )
    assert first is not None
    done = domain.merge_delivery(
        first,
        now=at(2),
        outcome=delivery_attempted(
            "d1",
            recipe_id="ACME-1",
            order_id="O1",
            attempt=2,
            status="succeeded",
            final=True,
            files=("1001_ID_O1_R_ACME-1_Ticket.pdf",),
        ),
    )
    assert done is not None
    assert (done.status, done.final, done.attempts) == ("succeeded", True, 2)
    assert done.last_error == "TimeoutError: connect timed out"
    assert done.files == ("1001_ID_O1_R_ACME-1_Ticket.pdf",)
    late = delivery_attempted("d1", recipe_id="ACME-1", order_id="O1", attempt=1, status="retrying", final=False)
    assert domain.merge_delivery(done, late, now=at(3)) is None
    same = delivery_attempted("d1", recipe_id="ACME-1", order_id="O1", attempt=2, status="succeeded", final=True)
    assert domain.merge_delivery(done, same, now=at(3)) is None


async def test_unknown_tenant_is_a_permanent_error(tenants: TenantsConfig) -> None:
    with pytest.raises(PermanentError, match="unknown tenant"):
        await service.record_order_event(
            order_event("linked", "O1", [("X-1", "i1", 1)], tenant="nobody"), tenants, MemoryStore(), Published()
        )


async def test_redelivery_after_a_failed_commit_republishes_the_same_trigger_ids(tenants: TenantsConfig) -> None:
    store, published = MemoryStore(), Published()
    event = order_event("linked", unique("O"), [("ACME-1", "i1", 1)])
    store.fail_commits = 1
    with pytest.raises(TransientError):
        await service.record_order_event(event, tenants, store, published)
    assert not store.orders  # rolled back, but the trigger was already out
    await service.record_order_event(event, tenants, store, published)
    await service.record_order_event(event, tenants, store, published)  # after the commit: a no-op
    assert len(published.messages) == 2
    assert published.messages[0].trigger_id == published.messages[1].trigger_id
    assert len(store.orders) == 1


async def test_publish_failure_leaves_nothing_committed(tenants: TenantsConfig) -> None:
    store = MemoryStore()

    async def broken(_triggers: object) -> None:
        raise TransientError("broker down")

    with pytest.raises(TransientError):
        await service.record_recipe_saved(recipe_saved("ACME-5"), tenants, store, broken)
    assert not store.recipes
    assert not store.processed


async def test_recipe_saved_stores_row_and_publishes_raw_feed(tenants: TenantsConfig) -> None:
    store, published = MemoryStore(), Published()
    event = recipe_saved("ACME-7", temporary=True, minutes=3)
    trigger = await service.record_recipe_saved(event, tenants, store, published)
    assert trigger is not None
    assert published.messages == [trigger]
    assert store.recipes[("acme", "ACME-7")].saved_at == at(3)
    assert await service.record_recipe_saved(event, tenants, store, published) is None


# --- the delivery log learns of every delivery before its first outcome, and the audit ----------------------------


def test_trigger_yields_one_pending_row_per_integration_the_tenant_knows(tenants: TenantsConfig) -> None:
    trigger = triggered(("orders-sftp", "no-such-integration", "both-azure-off", "orders-sftp"), order_id="O1")
    rows = domain.pending_deliveries(trigger, tenants.tenants["acme"], at(5))
    # The bundle-builder's rule: known to the tenant config (a disabled one too), each once, in trigger order.
    assert [(r.integration_id, r.integration_type) for r in rows] == [
        ("orders-sftp", "sftp"),
        ("both-azure-off", "azure-blob"),
    ]
    first = rows[0]
    assert first.delivery_id == stable_id(trigger.trigger_id, "orders-sftp")
    assert (first.status, first.final, first.attempts, first.last_error, first.files) == ("pending", False, 0, None, ())
    assert (first.order_id, first.order_number, first.recipe_id, first.reason) == (
        "O1",
        "1001",
        "ACME-1",
        "order_linked",
    )
    assert (first.updated_at, first.created_at, first.triggered_at) == (at(5), at(5), trigger.occurred_at)


async def test_trigger_inserts_pending_rows_and_a_redelivery_changes_nothing(tenants: TenantsConfig) -> None:
    store = MemoryStore()
    trigger = triggered(("raw-email", "raw-s3"), recipe_id="ACME-9")
    inserted = await service.record_trigger(trigger, tenants, store, now=at(1))
    assert {r.delivery_id for r in inserted} == set(store.deliveries)
    assert {d.status for d in store.deliveries.values()} == {"pending"}
    before = dict(store.deliveries)
    assert await service.record_trigger(trigger, tenants, store, now=at(9)) == ()
    assert store.deliveries == before  # still "pending since" the first sight, not the redelivery


async def test_any_outcome_replaces_pending_and_keeps_when_it_was_recorded(tenants: TenantsConfig) -> None:
    store = MemoryStore()
    trigger = triggered(("orders-sftp",), order_id="O1", minutes=-3)
    await service.record_trigger(trigger, tenants, store, now=at(0))
    delivery_id = stable_id(trigger.trigger_id, "orders-sftp")
    outcome = delivery_attempted(
        delivery_id,
        recipe_id="ACME-1",
        order_id="O1",
        attempt=1,
        status="retrying",
        final=False,
        error=("ConnectionRefusedError", "sftp.acme.example:22 refused"),
        trigger_id=trigger.trigger_id,
    )
    record = await service.record_delivery_outcome(outcome, store, now=at(2))
    assert record is not None
    assert (record.status, record.attempts, record.updated_at) == ("retrying", 1, outcome.occurred_at)
    assert (record.created_at, record.triggered_at) == (at(0), at(-3))
    assert store.deliveries[delivery_id] == record


async def test_pending_never_regresses_an_outcome_read_first(tenants: TenantsConfig) -> None:
    store = MemoryStore()
    trigger = triggered(("orders-sftp", "orders-zapier"), order_id="O1")
    sftp = stable_id(trigger.trigger_id, "orders-sftp")
    done = delivery_attempted(
        sftp,
        recipe_id="ACME-1",
        order_id="O1",
        attempt=1,
        status="succeeded",
        final=True,
        trigger_id=trigger.trigger_id,
    )
    await service.record_delivery_outcome(done, store, now=at(1))
    inserted = await service.record_trigger(trigger, tenants, store, now=at(2))
    assert [r.integration_id for r in inserted] == ["orders-zapier"]
    assert (store.deliveries[sftp].status, store.deliveries[sftp].final) == ("succeeded", True)


async def test_trigger_of_an_unknown_tenant_records_nothing(tenants: TenantsConfig) -> None:
    store = MemoryStore()
    assert await service.record_trigger(triggered(("x",), tenant="nobody"), tenants, store, now=at(0)) == ()
    assert not store.deliveries


async def _audit_fixture(tenants: TenantsConfig) -> tuple[MemoryStore, dict[str, str]]:
    """Deliveries of acme in every state and age, plus one of globex; names -> delivery IDs."""
    store, ids = MemoryStore(), {}
    old = triggered(("orders-sftp",), order_id="O-old")
    await service.record_trigger(old, tenants, store, now=at(0))
    ids["pending-old"] = stable_id(old.trigger_id, "orders-sftp")
    fresh = triggered(("orders-sftp",), order_id="O-fresh")
    await service.record_trigger(fresh, tenants, store, now=at(25))
    ids["pending-fresh"] = stable_id(fresh.trigger_id, "orders-sftp")
    for name, attempt, status, final in (
        ("retrying-old", 1, "retrying", False),
        ("succeeded-old", 2, "succeeded", True),
        ("failed-old", 3, "failed", True),
    ):
        ids[name] = unique(name)
        outcome = delivery_attempted(
            ids[name],
            recipe_id="ACME-1",
            order_id="O-" + name,
            attempt=attempt,
            status=status,
            final=final,
            error=("TimeoutError", "upload timed out") if status != "succeeded" else None,
        )
        await service.record_delivery_outcome(outcome, store, now=at(attempt))
    other = triggered(("everything-email",), tenant="globex", recipe_id="GLX-1", order_id="O-globex")
    await service.record_trigger(other, tenants, store, now=at(0))
    ids["globex-old"] = stable_id(other.trigger_id, "everything-email")
    return store, ids


async def test_audit_lists_only_unfinished_deliveries_older_than_the_deadline_newest_first(
    tenants: TenantsConfig,
) -> None:
    store, ids = await _audit_fixture(tenants)
    report = await service.audit_deliveries(store, "acme", older_than=timedelta(minutes=15), limit=10, now=at(30))
    assert report.cutoff == at(15)
    assert [e.delivery.delivery_id for e in report.entries] == [ids["retrying-old"], ids["pending-old"]]
    assert [e.reason for e in report.entries] == [
        "retrying: TimeoutError: upload timed out",
        "no outcome yet since 2026-11-01T12:00:00Z",
    ]
    assert not report.truncated
    everything = await service.audit_deliveries(store, "acme", older_than=timedelta(0), limit=10, now=at(30))
    assert ids["pending-fresh"] in {e.delivery.delivery_id for e in everything.entries}


async def test_audit_page_is_bounded_and_says_it_was_truncated(tenants: TenantsConfig) -> None:
    store, ids = await _audit_fixture(tenants)
    report = await service.audit_deliveries(store, "acme", older_than=timedelta(minutes=15), limit=1, now=at(30))
    assert [e.delivery.delivery_id for e in report.entries] == [ids["retrying-old"]]
    assert report.truncated
    with pytest.raises(ValueError, match="limit"):
        await service.audit_deliveries(store, "acme", older_than=timedelta(0), limit=1001)


async def test_audit_never_shows_another_tenants_deliveries(tenants: TenantsConfig) -> None:
    store, ids = await _audit_fixture(tenants)
    acme = await service.audit_deliveries(store, "acme", older_than=timedelta(0), limit=100, now=at(60))
    globex = await service.audit_deliveries(store, "globex", older_than=timedelta(0), limit=100, now=at(60))
    assert ids["globex-old"] not in {e.delivery.delivery_id for e in acme.entries}
    assert [e.delivery.delivery_id for e in globex.entries] == [ids["globex-old"]]


# --- bulk replay: the replayed delivery is marked, once, within its tenant ------------------------------------


async def _failed_for_good(store: MemoryStore, tenants: TenantsConfig, *, tenant: str = "acme") -> str:
    trigger = triggered(("orders-sftp",), order_id="O1", tenant=tenant)
    await service.record_trigger(trigger, tenants, store, now=at(0))
    delivery_id = stable_id(trigger.trigger_id, "orders-sftp")
    final = delivery_attempted(
        delivery_id,
        recipe_id="ACME-1",
        order_id="O1",
        attempt=3,
        status="failed",
        final=True,
        tenant=tenant,
        trigger_id=trigger.trigger_id,
        error=("ConnectionRefusedError", "refused"),
    )
    await service.record_delivery_outcome(final, store, now=at(5))
    return delivery_id


def _replay(of: str, *, tenant: str = "acme") -> IntegrationsTriggered:
    return triggered(("orders-sftp",), order_id="O1", tenant=tenant).model_copy(
        update={"replay_of": of, "trigger_id": stable_id("replay", of), "reason": "manual"}
    )


async def test_a_replay_trigger_marks_the_failure_it_replays_once_and_keeps_its_line(tenants: TenantsConfig) -> None:
    store = MemoryStore()
    original = await _failed_for_good(store, tenants)
    assert store.deliveries[original].item_id == "i1"  # the line the pending row was made for
    wanted = domain.DeliveryFilter(status="failed", replayed=False)
    assert [d.delivery_id for d in await store.list_deliveries("acme", wanted, after=None, limit=10)] == [original]

    replay = _replay(original)
    inserted = await service.record_trigger(replay, tenants, store, now=at(6))

    assert [r.delivery_id for r in inserted] == [stable_id(replay.trigger_id, "orders-sftp")]
    marked = store.deliveries[original]
    assert (marked.replayed_by, marked.status, marked.updated_at) == (replay.trigger_id, "failed", at(3))
    assert await store.list_deliveries("acme", wanted, after=None, limit=10) == []
    # A second replay (another trigger ID) of the same delivery does not take the mark over.
    await service.record_trigger(_replay(original).model_copy(update={"trigger_id": "other"}), tenants, store)
    assert store.deliveries[original].replayed_by == replay.trigger_id


async def test_a_replay_never_marks_another_tenants_delivery_or_an_unknown_one(tenants: TenantsConfig) -> None:
    store = MemoryStore()
    globex_failure = await _failed_for_good(store, tenants, tenant="globex")

    await service.record_trigger(_replay(globex_failure, tenant="acme"), tenants, store)
    await service.record_trigger(_replay("no-such-delivery"), tenants, store)

    assert store.deliveries[globex_failure].replayed_by is None
    assert "no-such-delivery" not in store.deliveries
