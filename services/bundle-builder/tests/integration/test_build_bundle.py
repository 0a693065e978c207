"""Building a bundle into a local store and into real S3 (SeaweedFS): files, names, checksums, manifest."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pypdf
import pytest

from relay_bundle_builder.adapters.assets import HttpAssetFetcher, make_session
from relay_bundle_builder.domain import BundleFailedError
from relay_bundle_builder.ports import BuildContext
from relay_bundle_builder.service import build_bundle
from relay_bundle_builder.settings import AssetFetchSettings
from relay_contracts.messages import IntegrationsTriggered, OrderLine, TriggerReason, recipe_object_key
from relay_devservers.seaweedfs import SeaweedS3
from relay_platform.errors import PermanentError
from relay_platform.objectstore import LocalDirectoryStore, ObjectNotFoundError, ObjectStore
from relay_platform.objectstore_s3 import S3ObjectStore
from relay_platform.objectstore_settings import open_object_store
from relay_platform.tenants import TenantsConfig

pytestmark = pytest.mark.integration

RECIPE_ID = "999-63CHGJokGoxPfSba"
ORDER = OrderLine(order_id="6182665224482", order_number="1022", item_id="14523", item_quantity=2)
PREFIX = "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_"


def trigger_for(
    recipe_id: str = RECIPE_ID,
    order: OrderLine | None = ORDER,
    tenant: str = "bb",
    reason: TriggerReason | None = None,
) -> IntegrationsTriggered:
    return IntegrationsTriggered(
        trigger_id=f"t-{recipe_id}-{reason}",
        tenant=tenant,
        recipe_id=recipe_id,
        recipe_key=recipe_object_key(tenant, recipe_id),
        feed="order" if order else "recipe",
        reason=reason or ("order_created" if order else "recipe_saved"),
        order=order,
        integration_ids=("factory-mail",),
        occurred_at=datetime.now(UTC),
    )


@pytest.fixture(scope="module")
async def fetcher() -> AsyncIterator[HttpAssetFetcher]:
    policy = AssetFetchSettings(timeout_s=0.5, max_bytes=256 * 1024, retries=1, retry_wait_s=0.01)
    async with make_session(policy) as session:
        yield HttpAssetFetcher(session, policy)


def context(store: ObjectStore, fetcher: HttpAssetFetcher) -> BuildContext:
    return BuildContext(store=store, fetcher=fetcher, recipe_url=lambda rid: f"https://cz.example/recipe/{rid}.json")


async def save_recipe(store: ObjectStore, recipe: dict[str, Any]) -> bytes:
    raw = json.dumps(recipe, ensure_ascii=False).encode()
    await store.put(
        recipe_object_key("strict" if recipe["id"].startswith("777-") else "bb", recipe["id"]),
        raw,
        content_type="application/json",
    )
    return raw


async def test_order_bundle_has_every_file_with_seed_names_and_checksums(
    tmp_path: Path, fetcher: HttpAssetFetcher, tenants: TenantsConfig, make_recipe: Any
) -> None:
    store = LocalDirectoryStore(tmp_path)
    raw = await save_recipe(store, make_recipe())
    bundle = await build_bundle(trigger_for(), tenants.tenants["bb"], context(store, fetcher))

    assert [f.name for f in bundle.files] == [
        f"{PREFIX}Recipe.json",
        f"{PREFIX}Ticket.pdf",
        f"{PREFIX}front-Production.pdf",  # extension from the content type: the URL has none
        f"{PREFIX}front-Preview.png",
        f"{PREFIX}front-Preview.jpg",
        f"{PREFIX}front-cart.png",
        f"{PREFIX}back-Preview.png",
        f"{PREFIX}logo.eps",
    ]
    assert bundle.directory == f"bundles/bb/orders/6182665224482/14523/{RECIPE_ID}"
    for meta in bundle.files:
        data = await store.get(meta.key)
        assert hashlib.sha256(data).hexdigest() == meta.sha256
        assert len(data) == meta.size
    assert await store.get(bundle.files[0].key) == raw  # the recipe JSON as stored
    manifest = json.loads(await store.get(bundle.manifest_key))
    assert [f["name"] for f in manifest["files"]] == [f.name for f in bundle.files]
    assert manifest["order"]["orderNumber"] == "1022"

    ticket = pypdf.PdfReader(io.BytesIO(await store.get(bundle.files[1].key)))
    text = " ".join(" ".join(page.extract_text() for page in ticket.pages).split())
    assert RECIPE_ID in text
    assert "Engraved Bottle — Édition spéciale" in text
    assert "Гравировка" in text
    assert "Χάραξη" in text
    assert "6182665224482" in text


async def test_rebuild_overwrites_with_identical_names_and_checksums(
    tmp_path: Path, fetcher: HttpAssetFetcher, tenants: TenantsConfig, make_recipe: Any
) -> None:
    store = LocalDirectoryStore(tmp_path)
    await save_recipe(store, make_recipe())
    first = await build_bundle(trigger_for(), tenants.tenants["bb"], context(store, fetcher))
    second = await build_bundle(trigger_for(), tenants.tenants["bb"], context(store, fetcher))
    assert first.files == second.files
    stored = sorted(p.name for p in (tmp_path / first.directory).iterdir())
    assert len(stored) == len(first.files) + 1  # + manifest.json, nothing duplicated


def ticket_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


async def test_update_rebuilds_the_ticket_under_the_same_names_and_keeps_the_earlier_ticket_for_deliveries_in_flight(
    tmp_path: Path, fetcher: HttpAssetFetcher, tenants: TenantsConfig, make_recipe: Any
) -> None:
    store = LocalDirectoryStore(tmp_path)
    await save_recipe(store, make_recipe())
    created = await build_bundle(trigger_for(), tenants.tenants["bb"], context(store, fetcher))
    before = ticket_text(await store.get(created.files[1].key))
    more = ORDER.model_copy(update={"item_quantity": 7, "status": "open"})
    updated = await build_bundle(
        trigger_for(order=more, reason="order_updated"), tenants.tenants["bb"], context(store, fetcher)
    )

    assert [f.name for f in updated.files] == [f.name for f in created.files]
    # Unchanged files keep their keys; the changed ticket gets a new one, and the earlier ticket stays readable
    # with its checksum, so a retry of a delivery requested before the update does not fail.
    assert [f.key for f in updated.files[2:]] == [f.key for f in created.files[2:]]
    assert updated.files[1].key != created.files[1].key
    earlier = await store.get(created.files[1].key)
    assert hashlib.sha256(earlier).hexdigest() == created.files[1].sha256
    assert updated.directory == created.directory
    assert updated.files[1].name == f"{PREFIX}Ticket.pdf"
    assert updated.files[1].sha256 != created.files[1].sha256
    assert [f.sha256 for f in updated.files[2:]] == [f.sha256 for f in created.files[2:]]  # same assets
    after_bytes = await store.get(updated.files[1].key)
    assert hashlib.sha256(after_bytes).hexdigest() == updated.files[1].sha256
    after = ticket_text(after_bytes)
    assert "Quantity: 2" in before
    assert "Quantity: 7" in after
    assert "Quantity: 2" not in after


async def test_late_update_of_a_cancelled_order_rebuilds_a_ticket_still_stamped_cancelled(
    tmp_path: Path, fetcher: HttpAssetFetcher, tenants: TenantsConfig, make_recipe: Any
) -> None:
    store = LocalDirectoryStore(tmp_path)
    await save_recipe(store, make_recipe())
    late = ORDER.model_copy(update={"item_quantity": 5, "status": "cancelled"})
    bundle = await build_bundle(
        trigger_for(order=late, reason="order_updated"), tenants.tenants["bb"], context(store, fetcher)
    )
    assert bundle.files[1].name == f"{PREFIX}Ticket.pdf"
    text = ticket_text(await store.get(bundle.files[1].key))
    assert "CANCELLED" in text
    assert "Quantity: 5" in text


async def test_cancellation_builds_only_the_notice_and_stamped_ticket_beside_the_bundle(
    tmp_path: Path,
    fetcher: HttpAssetFetcher,
    tenants: TenantsConfig,
    make_failing_recipe: Callable[[str, str], dict[str, Any]],
    asset_server: Any,
) -> None:
    store = LocalDirectoryStore(tmp_path)
    tag = uuid.uuid4().hex
    await save_recipe(store, make_failing_recipe(RECIPE_ID, tag))
    with pytest.raises(BundleFailedError):  # the manufacturing bundle of this recipe cannot be built
        await build_bundle(trigger_for(), tenants.tenants["bb"], context(store, fetcher))
    fetched_for_created = asset_server.fetched(f"/fail/{tag}")
    assert fetched_for_created > 0

    cancelled = trigger_for(order=ORDER.model_copy(update={"status": "cancelled"}), reason="order_cancelled")
    bundle = await build_bundle(cancelled, tenants.tenants["bb"], context(store, fetcher))
    again = await build_bundle(cancelled, tenants.tenants["bb"], context(store, fetcher))

    assert asset_server.fetched(f"/fail/{tag}") == fetched_for_created  # nothing fetched for the cancellation
    assert [f.name for f in bundle.files] == [f"{PREFIX}Cancellation.json", f"{PREFIX}Ticket.pdf"]
    assert bundle.directory == f"bundles/bb/orders/6182665224482/14523/{RECIPE_ID}/events/cancelled"
    assert again.files == bundle.files  # deterministic: a redelivered trigger rebuilds the same bytes
    notice = json.loads(await store.get(bundle.files[0].key))
    assert notice == {
        "event": "order_cancelled",
        "orderId": "6182665224482",
        "orderNumber": "1022",
        "recipeId": RECIPE_ID,
        "itemId": "14523",
        "itemQuantity": 2,
        "occurredAt": cancelled.model_dump(mode="json")["occurredAt"],
    }
    text = ticket_text(await store.get(bundle.files[1].key))
    assert "CANCELLED" in text
    assert "Quantity: 2" in text
    manifest = json.loads(await store.get(bundle.manifest_key))
    assert manifest["reason"] == "order_cancelled"


@pytest.mark.parametrize(("reason", "stem"), [("order_refunded", "Refund"), ("order_returned", "Return")])
async def test_refund_and_return_build_only_the_event_json(
    tmp_path: Path, fetcher: HttpAssetFetcher, tenants: TenantsConfig, reason: TriggerReason, stem: str
) -> None:
    store = LocalDirectoryStore(tmp_path)  # no recipe stored: the event bundle does not need it
    bundle = await build_bundle(trigger_for(reason=reason), tenants.tenants["bb"], context(store, fetcher))
    [notice] = bundle.files
    assert notice.name == f"{PREFIX}{stem}.json"
    assert notice.mime_type == "application/json"
    assert json.loads(await store.get(notice.key))["event"] == reason
    assert bundle.directory.endswith(f"/events/{reason.removeprefix('order_')}")


async def test_event_without_an_order_line_fails_visibly(
    tmp_path: Path, fetcher: HttpAssetFetcher, tenants: TenantsConfig
) -> None:
    store = LocalDirectoryStore(tmp_path)
    with pytest.raises(BundleFailedError, match="without an order line"):
        await build_bundle(
            trigger_for(order=None, reason="order_cancelled"), tenants.tenants["bb"], context(store, fetcher)
        )


async def test_recipe_feed_bundle_uses_recipe_id_names_and_recipe_folder(
    tmp_path: Path, fetcher: HttpAssetFetcher, tenants: TenantsConfig, make_recipe: Any
) -> None:
    store = LocalDirectoryStore(tmp_path)
    await save_recipe(store, make_recipe(attachments=[]))
    bundle = await build_bundle(trigger_for(order=None), tenants.tenants["bb"], context(store, fetcher))
    assert bundle.files[0].name == f"{RECIPE_ID}-Recipe.json"
    ticket = bundle.files[1]
    assert ticket.key == f"bundles/bb/recipes/{RECIPE_ID}/{ticket.sha256[:16]}/{RECIPE_ID}-Ticket.pdf"


async def test_missing_asset_fails_the_whole_bundle_naming_the_asset(
    tmp_path: Path, fetcher: HttpAssetFetcher, tenants: TenantsConfig, make_recipe: Any, asset_server: Any
) -> None:
    store = LocalDirectoryStore(tmp_path)
    await save_recipe(
        store, make_recipe(extra_views=[{"code": "side", "previewPng": asset_server.url("/missing.png")}])
    )
    with pytest.raises(BundleFailedError, match="view side PNG preview: not found"):
        await build_bundle(trigger_for(), tenants.tenants["bb"], context(store, fetcher))
    assert not (tmp_path / "bundles").exists()  # nothing half-built


async def test_loopback_assets_are_refused_for_a_tenant_without_allow_list(
    tmp_path: Path, fetcher: HttpAssetFetcher, tenants: TenantsConfig, make_recipe: Any
) -> None:
    store = LocalDirectoryStore(tmp_path)
    await save_recipe(store, make_recipe("777-strictRecipe"))
    with pytest.raises(BundleFailedError, match="refused"):
        await build_bundle(
            trigger_for("777-strictRecipe", tenant="strict"), tenants.tenants["strict"], context(store, fetcher)
        )


async def test_bundle_is_stored_in_s3_artifact_store(
    seaweedfs: SeaweedS3, fetcher: HttpAssetFetcher, tenants: TenantsConfig, make_recipe: Any
) -> None:
    bucket = seaweedfs.create_bucket()
    async with open_object_store(seaweedfs.object_store_settings(bucket, "artifacts")) as store:
        await store.ping()
        await save_recipe(store, make_recipe())
        bundle = await build_bundle(trigger_for(), tenants.tenants["bb"], context(store, fetcher))
        ticket = bundle.files[1]
        assert hashlib.sha256(await store.get(ticket.key)).hexdigest() == ticket.sha256
        assert await store.exists(bundle.manifest_key)
        assert not await store.exists("bundles/none.pdf")
        with pytest.raises(ObjectNotFoundError):
            await store.get("bundles/none.pdf")
        assert isinstance(store, S3ObjectStore)
        url = await store.presigned_get_url(ticket.key, expires_s=60, filename=ticket.name)
    raw = seaweedfs.client().get_object(Bucket=bucket, Key=f"artifacts/{ticket.key}")["Body"].read()
    assert hashlib.sha256(raw).hexdigest() == ticket.sha256
    assert url.startswith(seaweedfs.endpoint_url)
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert hashlib.sha256(await response.read()).hexdigest() == ticket.sha256


async def test_s3_store_with_wrong_credentials_is_a_permanent_error(seaweedfs: SeaweedS3) -> None:
    bucket = seaweedfs.create_bucket()
    async with S3ObjectStore.connect(
        bucket=bucket, endpoint_url=seaweedfs.endpoint_url, access_key_id="wrong", secret_access_key="wrong-secret"
    ) as store:
        with pytest.raises(PermanentError, match=r"InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|403"):
            await store.put("a/b.txt", b"x", content_type="text/plain")
        with pytest.raises(PermanentError):
            await store.ping()


async def test_s3_store_refuses_keys_that_escape_the_prefix(seaweedfs: SeaweedS3) -> None:
    bucket = seaweedfs.create_bucket()
    async with open_object_store(seaweedfs.object_store_settings(bucket, "p")) as store:
        with pytest.raises(PermanentError, match="invalid object key"):
            await store.put("../other/x", b"x", content_type="text/plain")
