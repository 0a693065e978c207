"""The bundle-builder's one use case: every trigger ends in delivery requests or a failed outcome per integration."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel

from relay_bundle_builder.domain import ByteBudget
from relay_bundle_builder.ports import BuildContext, BundleBudget, FetchedAsset
from relay_bundle_builder.service import request_deliveries
from relay_bundle_builder.spool import AssetSpool
from relay_contracts.messages import (
    DeliverBundle,
    DeliveryAttempted,
    IntegrationsTriggered,
    OrderLine,
    recipe_object_key,
    stable_id,
)
from relay_contracts.topics import DELIVERIES_OUTCOMES
from relay_platform.errors import PermanentError, TransientError
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.tenants import TenantsConfig, load_tenants

TENANTS = Path(__file__).parent.parent / "tenants.yaml"
RECIPE_ID = "999-unit"
INTEGRATIONS = ("factory-mail", "zap")
ORDER = OrderLine(order_id="6182665224482", order_number="1022", item_id="14523", item_quantity=2, status="open")

Published = list[tuple[str, BaseModel]]


def trigger(tenant: str = "bb", integrations: tuple[str, ...] = INTEGRATIONS) -> IntegrationsTriggered:
    return IntegrationsTriggered(
        trigger_id="t-unit",
        tenant=tenant,
        recipe_id=RECIPE_ID,
        recipe_key=recipe_object_key(tenant, RECIPE_ID),
        feed="order",
        reason="order_created",
        order=ORDER,
        integration_ids=integrations,
        occurred_at=datetime.now(UTC),
    )


def recipe(asset_count: int = 1) -> dict[str, object]:
    return {
        "id": RECIPE_ID,
        "created": "2026-11-20T10:00:00Z",
        "name": "Mug",
        "views": [{"code": f"v{n}", "previewPng": f"https://assets.example.com/{n}.png"} for n in range(asset_count)],
    }


class Fetcher:
    """Answers every asset with ``data``, or raises ``error``, or waits forever (``hang``)."""

    def __init__(self, *, data: bytes = b"x", error: Exception | None = None, hang: bool = False) -> None:
        self.data, self.error, self.hang = data, error, hang

    async def fetch(
        self, url: str, *, label: str, allowed_hosts: Sequence[str], budget: ByteBudget | None = None
    ) -> FetchedAsset:
        del url, allowed_hosts
        if self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error
        if budget is not None:
            budget.charge(len(self.data), label=label)
        return FetchedAsset(AssetSpool.of(self.data), "image/png")


class BrokenStore(LocalDirectoryStore):
    async def get(self, key: str) -> bytes:
        raise TransientError(f"object store unreachable ({key})")


@pytest.fixture
def tenants() -> TenantsConfig:
    return load_tenants(TENANTS)


async def run(
    tenants: TenantsConfig,
    store: LocalDirectoryStore,
    fetcher: Fetcher,
    *,
    final_read: bool = False,
    budget: BundleBudget | None = None,
    the_trigger: IntegrationsTriggered | None = None,
) -> Published:
    ctx = BuildContext(
        store=store,
        fetcher=fetcher,
        recipe_url=lambda rid: f"https://relay.example.com/recipe/{rid}.json",
        render_in_thread=False,
        budget=budget or BundleBudget(),
    )
    outgoing = await request_deliveries(the_trigger or trigger(), tenants, ctx, final_read=final_read)
    return [(message.topic, message.message) for message in outgoing]


async def stored(tmp_path: Path, document: dict[str, object]) -> LocalDirectoryStore:
    store = LocalDirectoryStore(tmp_path)
    await store.put(recipe_object_key("bb", RECIPE_ID), json.dumps(document).encode(), content_type="application/json")
    return store


def failures(published: Published) -> dict[str, DeliveryAttempted]:
    assert all(topic == DELIVERIES_OUTCOMES for topic, _ in published), published
    outcomes = {m.integration_id: m for _, m in published if isinstance(m, DeliveryAttempted)}
    assert set(outcomes) == set(INTEGRATIONS)
    for integration_id, outcome in outcomes.items():
        assert outcome.status == "failed"
        assert outcome.final
        assert outcome.delivery_id == stable_id("t-unit", integration_id)
    return outcomes


async def test_a_built_bundle_requests_one_delivery_per_integration(tmp_path: Path, tenants: TenantsConfig) -> None:
    published = await run(tenants, await stored(tmp_path, recipe()), Fetcher(data=b"png"))
    requests = [m for _, m in published if isinstance(m, DeliverBundle)]
    assert [r.integration_id for r in requests] == list(INTEGRATIONS)


async def test_an_unclassified_error_while_building_becomes_a_failed_outcome_naming_only_its_class(
    tmp_path: Path, tenants: TenantsConfig
) -> None:
    secretish = RuntimeError("token=abc123 at /internal/path")
    published = await run(tenants, await stored(tmp_path, recipe()), Fetcher(error=secretish))
    for outcome in failures(published).values():
        assert outcome.error_class == "RuntimeError"
        assert outcome.error_message is not None
        assert "unexpected RuntimeError" in outcome.error_message
        assert "abc123" not in outcome.error_message


async def test_a_permanent_error_becomes_a_failed_outcome_with_its_reason(
    tmp_path: Path, tenants: TenantsConfig
) -> None:
    published = await run(
        tenants, await stored(tmp_path, recipe()), Fetcher(error=PermanentError("view v0: refused by the server"))
    )
    assert all("refused by the server" in (o.error_message or "") for o in failures(published).values())


async def test_a_transient_error_is_raised_for_a_re_read_until_the_final_read_then_reported(
    tmp_path: Path, tenants: TenantsConfig
) -> None:
    store = BrokenStore(tmp_path)
    with pytest.raises(TransientError):
        await run(tenants, store, Fetcher())
    published = await run(tenants, store, Fetcher(), final_read=True)
    for outcome in failures(published).values():
        assert outcome.error_class == "TransientError"
        assert "object store unreachable" in (outcome.error_message or "")


async def test_a_bundle_over_its_time_budget_fails_with_the_reason(tmp_path: Path, tenants: TenantsConfig) -> None:
    published = await run(
        tenants, await stored(tmp_path, recipe()), Fetcher(hang=True), budget=BundleBudget(time_s=0.05)
    )
    assert all("0.05 s budget" in (o.error_message or "") for o in failures(published).values())


async def test_a_recipe_with_more_assets_than_the_budget_fails_before_fetching_anything(
    tmp_path: Path, tenants: TenantsConfig
) -> None:
    fetcher = Fetcher(error=AssertionError("must not fetch"))
    published = await run(
        tenants, await stored(tmp_path, recipe(asset_count=5)), fetcher, budget=BundleBudget(max_assets=4)
    )
    assert all("lists 5 asset files" in (o.error_message or "") for o in failures(published).values())


async def test_assets_over_the_byte_budget_fail_the_bundle(tmp_path: Path, tenants: TenantsConfig) -> None:
    published = await run(
        tenants,
        await stored(tmp_path, recipe(asset_count=3)),
        Fetcher(data=b"z" * 1000),
        budget=BundleBudget(max_asset_bytes=2500),
    )
    assert all("2500-byte budget" in (o.error_message or "") for o in failures(published).values())


async def test_a_missing_recipe_fails_every_integration_and_a_cancellation_too(
    tmp_path: Path, tenants: TenantsConfig
) -> None:
    store = LocalDirectoryStore(tmp_path)
    assert failures(await run(tenants, store, Fetcher()))
    cancelled = trigger().model_copy(
        update={"reason": "order_cancelled", "order": ORDER.model_copy(update={"status": "cancelled"})}
    )
    assert failures(await run(tenants, store, Fetcher(), the_trigger=cancelled))


async def test_an_unknown_tenant_is_a_permanent_error_and_publishes_nothing(
    tmp_path: Path, tenants: TenantsConfig
) -> None:
    with pytest.raises(PermanentError, match="unknown tenant"):
        await run(tenants, await stored(tmp_path, recipe()), Fetcher(), the_trigger=trigger(tenant="nobody"))


async def test_a_trigger_listing_no_known_integration_publishes_nothing(tmp_path: Path, tenants: TenantsConfig) -> None:
    published = await run(
        tenants, await stored(tmp_path, recipe()), Fetcher(), the_trigger=trigger(integrations=("gone",))
    )
    assert published == []
