"""The SQL repository on SQLite and on a real PostgreSQL: migrations, idempotency, ordering, tenant scoping."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from association_store_factories import (
    Published,
    at,
    delivery_attempted,
    order_event,
    recipe_saved,
    triggered,
    unique,
)
from sqlalchemy.engine import Connection

from relay_association_store import service
from relay_association_store.adapters import http, tables
from relay_association_store.adapters.repository import MIGRATIONS, SqlStore
from relay_association_store.domain import DeliveryFilter, OrderPage, RecentOrders
from relay_contracts.messages import IntegrationStateChanged, stable_id
from relay_devservers.processes import free_port
from relay_platform.errors import TransientError
from relay_platform.tenants import TenantsConfig
from relay_testing.postgres import PostgresServer

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/nested/dir/store.db"  # parent dirs are created
    else:
        url = request.getfixturevalue("postgres_url")
    sql = SqlStore.open(url)
    await sql.migrate()
    await sql.migrate()  # idempotent: a restart runs it again
    try:
        yield sql
    finally:
        await sql.close()


async def count(store: SqlStore, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    async with store.engine.connect() as connection:
        result = await connection.execute(sa.select(sa.func.count()).select_from(table).where(*where))
        return int(result.scalar_one())


async def test_resent_order_event_creates_no_duplicate_rows(store: SqlStore, tenants: TenantsConfig) -> None:
    order_id, published = unique("O"), Published()
    event = order_event("linked", order_id, [("ACME-1", "i1", 2), ("ACME-2", "i2", 1)], minutes=1)
    await service.record_order_event(event, tenants, store, published)
    await service.record_order_event(event, tenants, store, published)  # redelivered: same event ID
    resent = order_event("linked", order_id, [("ACME-1", "i1", 2)], minutes=2)  # OMS resend: new ID, same content
    await service.record_order_event(resent, tenants, store, published)
    assert await count(store, tables.orders, tables.orders.c.order_id == order_id) == 1
    assert await count(store, tables.order_items, tables.order_items.c.order_id == order_id) == 2
    assert len(published.messages) == 2


async def test_failed_commit_then_redelivery_publishes_same_trigger_and_stores_once(
    store: SqlStore, tenants: TenantsConfig
) -> None:
    order_id, published = unique("O"), Published()
    event = order_event("created", order_id, [("ACME-1", "i1", 1)], minutes=1)
    calls = 0

    async def publish_then_crash(triggers: object) -> None:
        nonlocal calls
        calls += 1
        await published(triggers)  # type: ignore[arg-type]
        if calls == 1:
            raise TransientError("process died before commit")

    with pytest.raises(TransientError):
        await service.record_order_event(event, tenants, store, publish_then_crash)
    assert await count(store, tables.orders, tables.orders.c.order_id == order_id) == 0
    await service.record_order_event(event, tenants, store, publish_then_crash)
    assert [t.trigger_id for t in published.messages] == [published.messages[0].trigger_id] * 2
    assert await count(store, tables.order_items, tables.order_items.c.order_id == order_id) == 1


async def test_stale_occurred_at_does_not_overwrite_newer_state(store: SqlStore, tenants: TenantsConfig) -> None:
    order_id, published = unique("O"), Published()
    await service.record_order_event(
        order_event("created", order_id, [("ACME-1", "i1", 3)], minutes=10), tenants, store, published
    )
    await service.record_order_event(order_event("cancelled", order_id, minutes=20), tenants, store, published)
    before = len(published.messages)
    await service.record_order_event(
        order_event("updated", order_id, [("ACME-1", "i1", 9)], minutes=5), tenants, store, published
    )
    await service.record_order_event(order_event("created", order_id, minutes=15), tenants, store, published)
    assert len(published.messages) == before
    [view] = await store.find_orders("acme", "orderId", order_id)
    assert view.order.status == "cancelled"
    assert view.order.items["i1"].quantity == 3
    assert await count(store, tables.processed_events, tables.processed_events.c.tenant == "acme") >= 4


async def test_recipe_row_keeps_the_newest_save(store: SqlStore, tenants: TenantsConfig) -> None:
    recipe_id = unique("ACME")
    await service.record_recipe_saved(recipe_saved(recipe_id, minutes=5), tenants, store, Published())
    await service.record_recipe_saved(recipe_saved(recipe_id, temporary=True, minutes=1), tenants, store, Published())
    async with store.transaction() as tx:
        record = await tx.load_recipe("acme", recipe_id)
    assert record is not None
    assert not record.temporary
    assert record.created.tzinfo is not None


async def test_delivery_log_is_visible_per_order_and_scoped_to_the_tenant(
    store: SqlStore, tenants: TenantsConfig
) -> None:
    order_id = unique("O")
    await service.record_order_event(
        order_event("linked", order_id, [("ACME-1", "i1", 1)], order_number="N-77"), tenants, store, Published()
    )
    await service.record_order_event(
        order_event("linked", order_id, [("GLX-1", "g1", 1)], tenant="globex", order_number="N-77"),
        tenants,
        store,
        Published(),
    )
    delivery = unique("d")
    for outcome in (
        delivery_attempted(
            delivery,
            recipe_id="ACME-1",
            order_id=order_id,
            attempt=1,
            status="retrying",
            final=False,
            error=("ConnectionRefusedError", "sftp.acme.example:22 refused"),
        ),
        delivery_attempted(
            delivery,
            recipe_id="ACME-1",
            order_id=order_id,
            attempt=3,
            status="failed",
            final=True,
            error=("TimeoutError", "upload timed out"),
            files=("a.pdf", "b.json"),
        ),
        delivery_attempted(delivery, recipe_id="ACME-1", order_id=order_id, attempt=2, status="retrying", final=False),
    ):
        await service.record_delivery_outcome(outcome, store)
    [view] = await store.find_orders("acme", "orderNumber", "N-77")
    assert view.order.order_id == order_id
    assert [item.recipe_id for item in view.order.items.values()] == ["ACME-1"]
    [row] = view.deliveries
    assert (row.status, row.final, row.attempts) == ("failed", True, 3)
    assert row.last_error == "TimeoutError: upload timed out"
    assert row.files == ("a.pdf", "b.json")
    [globex] = await store.find_orders("globex", "recipeId", "GLX-1")
    assert globex.deliveries == ()
    assert await store.find_orders("globex", "recipeId", "ACME-1") == []
    assert await store.find_orders("nobody", "orderId", order_id) == []


async def test_ping_answers_when_the_database_does(store: SqlStore) -> None:
    assert await store.ping()


async def test_unreachable_postgresql_is_a_transient_error() -> None:
    store = SqlStore.open(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none", connect_timeout_s=2)
    try:
        assert not await store.ping()
        with pytest.raises(TransientError, match="database"):
            async with store.transaction() as tx:
                await tx.load_order("acme", "O1")
    finally:
        await store.close()


def own_tenant(tenants: TenantsConfig) -> tuple[str, TenantsConfig]:
    """A fresh tenant ID with acme's integrations: the audit of a shared database sees only this test's rows."""
    tenant_id = unique("t").lower()
    return tenant_id, TenantsConfig(tenants={tenant_id: tenants.tenants["acme"]})


async def test_trigger_records_pending_rows_that_the_first_outcome_replaces(
    store: SqlStore, tenants: TenantsConfig
) -> None:
    order_id = unique("O")
    await service.record_order_event(
        order_event("linked", order_id, [("ACME-1", "i1", 1)], order_number="P-1"), tenants, store, Published()
    )
    trigger = triggered(("orders-sftp", "orders-zapier"), order_id=order_id, minutes=-5)
    await service.record_trigger(trigger, tenants, store, now=at(0))
    await service.record_trigger(trigger, tenants, store, now=at(4))  # redelivered: nothing changes
    [view] = await store.find_orders("acme", "orderId", order_id)
    assert [(d.integration_id, d.status, d.attempts, d.final) for d in view.deliveries] == [
        ("orders-sftp", "pending", 0, False),
        ("orders-zapier", "pending", 0, False),
    ]
    assert {(d.updated_at, d.created_at, d.triggered_at) for d in view.deliveries} == {(at(0), at(0), at(-5))}
    sftp = stable_id(trigger.trigger_id, "orders-sftp")
    outcome = delivery_attempted(
        sftp, recipe_id="ACME-1", order_id=order_id, attempt=1, status="succeeded", final=True, files=("t.pdf",)
    )
    await service.record_delivery_outcome(outcome, store, now=at(3))
    [view] = await store.find_orders("acme", "orderId", order_id)
    done = next(d for d in view.deliveries if d.delivery_id == sftp)
    assert (done.status, done.final, done.attempts, done.files) == ("succeeded", True, 1, ("t.pdf",))
    assert (done.updated_at, done.created_at, done.triggered_at) == (outcome.occurred_at, at(0), at(-5))


async def test_a_late_trigger_never_regresses_an_outcome_read_first(store: SqlStore, tenants: TenantsConfig) -> None:
    tenant_id, config = own_tenant(tenants)
    trigger = triggered(("orders-sftp",), tenant=tenant_id, order_id=unique("O"))
    delivery_id = stable_id(trigger.trigger_id, "orders-sftp")
    outcome = delivery_attempted(
        delivery_id,
        tenant=tenant_id,
        recipe_id="ACME-1",
        order_id=trigger.order.order_id if trigger.order else None,
        attempt=1,
        status="retrying",
        final=False,
        error=("TimeoutError", "connect timed out"),
    )
    await service.record_delivery_outcome(outcome, store, now=at(1))
    assert await service.record_trigger(trigger, config, store, now=at(2)) == ()
    async with store.transaction() as tx:
        row = await tx.load_delivery(delivery_id)
    assert row is not None
    assert (row.status, row.attempts, row.last_error) == ("retrying", 1, "TimeoutError: connect timed out")
    assert (row.created_at, row.triggered_at) == (at(1), None)


async def test_audit_lists_unfinished_deliveries_past_the_deadline_for_one_tenant_only(
    store: SqlStore, tenants: TenantsConfig
) -> None:
    tenant_id, config = own_tenant(tenants)
    other_id, other_config = own_tenant(tenants)
    old = triggered(("orders-sftp",), tenant=tenant_id, order_id="O-old")
    fresh = triggered(("orders-sftp",), tenant=tenant_id, order_id="O-fresh")
    foreign = triggered(("orders-sftp",), tenant=other_id, order_id="O-old")
    await service.record_trigger(old, config, store, now=at(0))
    await service.record_trigger(fresh, config, store, now=at(25))
    await service.record_trigger(foreign, other_config, store, now=at(0))
    ids = {}
    for name, attempt, status, final in (("retrying", 1, "retrying", False), ("failed", 2, "failed", True)):
        ids[name] = unique(name)
        await service.record_delivery_outcome(
            delivery_attempted(
                ids[name],
                tenant=tenant_id,
                recipe_id="ACME-1",
                order_id="O-" + name,
                attempt=attempt,
                status=status,
                final=final,
                error=("ConnectionRefusedError", "sftp.acme.example:22 refused"),
            ),
            store,
            now=at(attempt),
        )
    report = await service.audit_deliveries(store, tenant_id, older_than=timedelta(minutes=15), limit=10, now=at(30))
    assert [(e.delivery.order_id, e.delivery.status) for e in report.entries] == [
        ("O-retrying", "retrying"),
        ("O-old", "pending"),
    ]
    assert report.entries[0].reason == "retrying: ConnectionRefusedError: sftp.acme.example:22 refused"
    assert report.entries[1].reason == "no outcome yet since 2026-11-01T12:00:00Z"
    assert report.entries[1].delivery.delivery_id == stable_id(old.trigger_id, "orders-sftp")
    assert not report.truncated
    page = await service.audit_deliveries(store, tenant_id, older_than=timedelta(minutes=15), limit=1, now=at(30))
    assert ([e.delivery.order_id for e in page.entries], page.truncated) == (["O-retrying"], True)
    everything = await service.audit_deliveries(store, tenant_id, older_than=timedelta(0), limit=10, now=at(30))
    assert [e.delivery.order_id for e in everything.entries] == ["O-fresh", "O-retrying", "O-old"]
    theirs = await service.audit_deliveries(store, other_id, older_than=timedelta(0), limit=10, now=at(30))
    assert [e.delivery.delivery_id for e in theirs.entries] == [stable_id(foreign.trigger_id, "orders-sftp")]


def _upgrade(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_upgrade_keeps_existing_deliveries_and_dates_them_by_their_last_change(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/old.db"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"upgrade_{uuid.uuid4().hex[:12]}")
    sql = SqlStore.open(url)
    try:
        async with sql.engine.begin() as connection:
            await connection.run_sync(_upgrade, "0001")
            await connection.execute(
                sa.text(
                    "INSERT INTO deliveries (delivery_id, tenant, integration_id, integration_type, recipe_id, "
                    "trigger_id, reason, status, final, attempts, files, updated_at) VALUES ('d-old', 'acme', "
                    "'orders-sftp', 'sftp', 'ACME-1', 't-old', 'recipe_saved', 'retrying', false, 1, '[]', :at)"
                ),
                {"at": at(1) if backend == "postgresql" else at(1).replace(tzinfo=None)},
            )
        await sql.migrate()
        async with sql.transaction() as tx:
            row = await tx.load_delivery("d-old")
        assert row is not None
        assert (row.status, row.updated_at, row.created_at, row.triggered_at) == ("retrying", at(1), at(1), None)
        report = await service.audit_deliveries(sql, "acme", older_than=timedelta(0), limit=10, now=at(2))
        assert [e.delivery.delivery_id for e in report.entries] == ["d-old"]
    finally:
        await sql.close()


FIRST_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
LATER_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_an_orders_first_trace_is_stored_and_later_events_never_overwrite_it(
    store: SqlStore, tenants: TenantsConfig
) -> None:
    order_id, untraced_id, published = unique("O"), unique("O"), Published()
    created = order_event("created", order_id, [("ACME-1", "i1", 1)], minutes=1)
    await service.record_order_event(created, tenants, store, published, trace_parent=FIRST_TRACE)
    for later in (
        order_event("updated", order_id, [("ACME-1", "i1", 2)], minutes=2),
        order_event("cancelled", order_id, minutes=3),
    ):
        await service.record_order_event(later, tenants, store, published, trace_parent=LATER_TRACE)
    untraced = order_event("linked", untraced_id, [("ACME-1", "i1", 1)])
    await service.record_order_event(untraced, tenants, store, published)

    page = await service.find_orders(store, "acme", "orderId", order_id)
    assert [(view.order.status, view.order.trace_parent) for view in page.orders] == [("cancelled", FIRST_TRACE)]
    page = await service.find_orders(store, "acme", "orderId", untraced_id)
    assert [view.order.trace_parent for view in page.orders] == [None]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_upgrade_from_0002_keeps_existing_orders_without_a_trace(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, tenants: TenantsConfig
) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/old.db"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"upgrade_{uuid.uuid4().hex[:12]}")
    sql = SqlStore.open(url)
    stamp = at(1) if backend == "postgresql" else at(1).replace(tzinfo=None)
    try:
        async with sql.engine.begin() as connection:
            await connection.run_sync(_upgrade, "0002")
            await connection.execute(
                sa.text(
                    "INSERT INTO orders (tenant, order_id, order_number, status, status_at, items_at, updated_at) "
                    "VALUES ('acme', 'O-old', '1001', 'open', :at, :at, :at)"
                ),
                {"at": stamp},
            )
            await connection.execute(
                sa.text(
                    "INSERT INTO order_items (tenant, order_id, item_id, recipe_id, item_quantity, occurred_at) "
                    "VALUES ('acme', 'O-old', 'i1', 'ACME-1', 1, :at)"
                ),
                {"at": stamp},
            )
        await sql.migrate()
        async with sql.transaction() as tx:
            old = await tx.load_order("acme", "O-old")
        assert old is not None
        assert (old.status, old.updated_at, sorted(old.items), old.trace_parent) == ("open", at(1), ["i1"], None)
        # An event on the old order in a trace now: not its original trace, so it stays unknown.
        cancelled = order_event("cancelled", "O-old", minutes=2)
        await service.record_order_event(cancelled, tenants, sql, Published(), trace_parent=LATER_TRACE)
        created = order_event("created", "O-new", [("ACME-1", "i1", 1)], minutes=2)
        await service.record_order_event(created, tenants, sql, Published(), trace_parent=FIRST_TRACE)
        async with sql.transaction() as tx:
            old = await tx.load_order("acme", "O-old")
            new = await tx.load_order("acme", "O-new")
        assert old is not None
        assert new is not None
        assert (old.status, old.trace_parent, new.trace_parent) == ("cancelled", None, FIRST_TRACE)
    finally:
        await sql.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_upgrade_from_0006_reads_existing_states_as_operator_changes_and_keeps_new_causes(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, tenants: TenantsConfig
) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/old.db"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"upgrade_{uuid.uuid4().hex[:12]}")
    sql = SqlStore.open(url)
    stamp = at(1) if backend == "postgresql" else at(1).replace(tzinfo=None)
    try:
        async with sql.engine.begin() as connection:
            await connection.run_sync(_upgrade, "0006")
            await connection.execute(
                sa.text(
                    "INSERT INTO integration_states (tenant, integration_id, state, reason, changed_by, changed_at, "
                    "event_id, recorded_at) VALUES ('acme', 'orders-sftp', 'paused', 'hook down', 'admin', :at, "
                    "'e-old', :at)"
                ),
                {"at": stamp},
            )
        await sql.migrate()
        [old] = await service.integration_states(sql, "acme")
        assert (old.state, old.reason, old.changed_by, old.cause) == ("paused", "hook down", "admin", "operator")
        unhealthy = IntegrationStateChanged(
            event_id=unique("e"),
            tenant="acme",
            integration_id="orders-zapier",
            state="paused",
            reason="5 consecutive failed attempts; last: TransientError: connection refused",
            changed_by="destination-health",
            changed_at=at(2),
            cause="unhealthy",
        )
        await service.record_integration_state(unhealthy, tenants, sql)
        recovered = unhealthy.model_copy(update={"event_id": unique("e"), "state": "active", "reason": None})
        await service.record_integration_state(
            recovered.model_copy(update={"changed_at": at(3), "cause": "recovered"}), tenants, sql
        )
        kept = {
            s.integration_id: (s.state, s.cause, s.changed_by) for s in await service.integration_states(sql, "acme")
        }
        assert kept == {
            "orders-sftp": ("paused", "operator", "admin"),
            "orders-zapier": ("active", "recovered", "destination-health"),
        }
    finally:
        await sql.close()


def _pause(integration: str, minutes: float, *, tenant: str = "acme", **fields: str) -> IntegrationStateChanged:
    return IntegrationStateChanged(
        event_id=unique("state"),
        tenant=tenant,
        integration_id=integration,
        state="paused",
        changed_at=at(minutes),
        **fields,  # type: ignore[arg-type]
    )


async def test_waiting_deliveries_of_a_paused_integration_read_as_held_until_it_is_resumed(
    store: SqlStore, tenants: TenantsConfig
) -> None:
    order_id = unique("O")
    await service.record_order_event(
        order_event("linked", order_id, [("ACME-1", "i1", 1)], order_number=unique("H")), tenants, store, Published()
    )
    # Pending: orders-sftp and orders-zapier; then a retrying and a final (failed) orders-sftp delivery.
    trigger = triggered(("orders-sftp", "orders-zapier"), order_id=order_id)
    await service.record_trigger(trigger, tenants, store, now=at(0))
    pending = stable_id(trigger.trigger_id, "orders-sftp")
    zapier = stable_id(trigger.trigger_id, "orders-zapier")
    retrying, failed = unique("d-retrying"), unique("d-failed")
    for outcome in (
        delivery_attempted(retrying, recipe_id="ACME-1", order_id=order_id, attempt=1, status="retrying", final=False),
        delivery_attempted(failed, recipe_id="ACME-1", order_id=order_id, attempt=2, status="failed", final=True),
    ):
        await service.record_delivery_outcome(outcome, store)
    unhealthy = _pause("orders-sftp", 10, reason="5 consecutive failed attempts", cause="unhealthy")
    await service.record_integration_state(unhealthy, tenants, store)
    # Another tenant's pause of an integration with the same ID as acme's orders-zapier.
    await service.record_integration_state(_pause("orders-zapier", 10, tenant="globex"), tenants, store)

    def wire(page: OrderPage | RecentOrders) -> dict[str, tuple[bool, str | None]]:
        [order] = [http.found_order(view, page.held) for view in page.orders if view.order.order_id == order_id]
        return {d.delivery_id or "": (d.held, d.held_cause) for d in order.deliveries}

    expected = {
        pending: (True, "unhealthy"),
        retrying: (True, "unhealthy"),
        failed: (False, None),
        zapier: (False, None),
    }
    found = await service.find_orders(store, "acme", "orderId", order_id)
    assert wire(found) == expected
    recent = await service.recent_orders(store, "acme", after=None, limit=50)
    assert wire(recent) == expected
    listed = await service.list_deliveries(store, "acme", DeliveryFilter(status="retrying"), after=None, limit=50)
    [entry] = [
        http.listed_delivery(d, listed.held.get(d.delivery_id)) for d in listed.deliveries if d.delivery_id == retrying
    ]
    assert entry.model_dump(mode="json", by_alias=True)["held"] is True
    assert entry.model_dump(mode="json", by_alias=True)["heldCause"] == "unhealthy"
    dead = await service.list_deliveries(store, "acme", DeliveryFilter(status="failed"), after=None, limit=50)
    assert dead.held == {}

    # An operator's pause of orders-zapier holds its delivery too, saying so.
    await service.record_integration_state(_pause("orders-zapier", 11, changed_by="admin"), tenants, store)
    found = await service.find_orders(store, "acme", "orderId", order_id)
    assert wire(found)[zapier] == (True, "operator")

    # A resume (here: recovered after a probe) clears it at once; nothing about the deliveries was written.
    resumed = IntegrationStateChanged(
        event_id=unique("state"),
        tenant="acme",
        integration_id="orders-sftp",
        state="active",
        changed_at=at(12),
        cause="recovered",
        changed_by="destination-health",
    )
    await service.record_integration_state(resumed, tenants, store)
    found = await service.find_orders(store, "acme", "orderId", order_id)
    assert wire(found) == {**expected, pending: (False, None), retrying: (False, None), zapier: (True, "operator")}
