"""The SQL repository on SQLite and on a real PostgreSQL: migrations, idempotency, ordering, tenant scoping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from association_store_factories import Published, delivery_attempted, order_event, recipe_saved, unique

from relay_association_store import service
from relay_association_store.adapters import tables
from relay_association_store.adapters.repository import SqlStore
from relay_platform.errors import TransientError
from relay_platform.tenants import TenantsConfig
from relay_testing.processes import free_port

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
