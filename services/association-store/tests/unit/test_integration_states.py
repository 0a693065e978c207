"""Pause and resume as the store keeps them: the newest ``changedAt`` per (tenant, integration) wins, whatever order
the changes are read in; a stale or redelivered change changes nothing; tenants never share a row."""

from __future__ import annotations

import uuid
from datetime import datetime

from association_store_factories import MemoryStore, at

from relay_association_store import service
from relay_contracts.messages import IntegrationState, IntegrationStateChanged
from relay_platform.tenants import TenantsConfig


def change(
    state: IntegrationState, when: datetime, *, tenant: str = "acme", integration: str = "orders-zapier", **fields: str
) -> IntegrationStateChanged:
    return IntegrationStateChanged(
        event_id=str(uuid.uuid4()),
        tenant=tenant,
        integration_id=integration,
        state=state,
        changed_at=when,
        **fields,  # type: ignore[arg-type]
    )


async def test_a_pause_is_kept_with_its_reason_and_a_later_resume_replaces_it(tenants: TenantsConfig) -> None:
    store = MemoryStore()
    paused = await service.record_integration_state(
        change("paused", at(1), reason="hook down", changed_by="admin"), tenants, store
    )
    assert paused is not None
    assert (paused.state, paused.reason, paused.changed_by) == ("paused", "hook down", "admin")
    resumed = await service.record_integration_state(change("active", at(2)), tenants, store)
    assert resumed is not None
    [kept] = await store.integration_states("acme")
    assert (kept.state, kept.changed_at, kept.reason) == ("active", at(2), None)


async def test_a_stale_or_redelivered_change_is_ignored(tenants: TenantsConfig) -> None:
    store = MemoryStore()
    resume = change("active", at(5))
    await service.record_integration_state(resume, tenants, store)
    # Read after the newer resume (another partition's lag, a replica's clock): the integration stays active.
    assert await service.record_integration_state(change("paused", at(4)), tenants, store) is None
    assert await service.record_integration_state(resume, tenants, store) is None
    [kept] = await store.integration_states("acme")
    assert (kept.state, kept.event_id) == ("active", resume.event_id)


async def test_another_tenants_same_integration_id_is_a_row_of_its_own(tenants: TenantsConfig) -> None:
    store = MemoryStore()
    await service.record_integration_state(change("paused", at(1), tenant="globex"), tenants, store)
    assert await store.integration_states("acme") == []
    [globex] = await store.integration_states("globex")
    assert (globex.tenant, globex.integration_id, globex.state) == ("globex", "orders-zapier", "paused")


async def test_a_change_for_an_unknown_tenant_stores_nothing(tenants: TenantsConfig) -> None:
    store = MemoryStore()
    assert await service.record_integration_state(change("paused", at(1), tenant="nobody"), tenants, store) is None
    assert store.states == {}


async def test_the_cause_and_who_are_kept_with_the_state_and_an_operator_change_defaults_to_operator(
    tenants: TenantsConfig,
) -> None:
    store = MemoryStore()
    reason = "5 consecutive failed attempts; last: TransientError: connection refused"
    unhealthy = change("paused", at(1), reason=reason, changed_by="destination-health", cause="unhealthy")
    await service.record_integration_state(unhealthy, tenants, store)
    [kept] = await store.integration_states("acme")
    assert (kept.state, kept.cause, kept.changed_by, kept.reason) == (
        "paused",
        "unhealthy",
        "destination-health",
        reason,
    )
    # An operator's resume (no cause said: the message's default) replaces the cause with its own.
    await service.record_integration_state(change("active", at(2), changed_by="admin"), tenants, store)
    [kept] = await store.integration_states("acme")
    assert (kept.state, kept.cause, kept.changed_by) == ("active", "operator", "admin")
