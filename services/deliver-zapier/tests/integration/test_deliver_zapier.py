"""deliver-zapier end to end: DeliverBundle on the real broker -> POST to a local hook -> outcome; the links in
the payload download the stored bytes and expire."""

import time

import aiohttp
import pytest
from faststream import FastStream

from relay_contracts.messages import OrderLine
from relay_delivery.testing import OutcomeCollector, deliver_bundle, store_bundle
from relay_devservers.webhooks import Reply, WebhookReceiver
from relay_platform.links import LinkSettings, LinkSigner
from relay_platform.objectstore import LocalDirectoryStore

pytestmark = pytest.mark.integration

ORDER = OrderLine(order_id="6182665224482", order_number="1022", item_id="7", item_quantity=1)
FILES = {
    "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf": (b"%PDF-1.7 ticket" * 100, "application/pdf"),
    "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba.json": (b'{"recipeId": "999-63CHGJokGoxPfSba"}', "application/json"),
}


async def test_order_delivery_posts_seed_payload_whose_links_download_the_files(
    zapier_app: FastStream, outcomes: OutcomeCollector, store: LocalDirectoryStore, webhook_receiver: WebhookReceiver
) -> None:
    files = await store_bundle(store, FILES)
    request = deliver_bundle(tenant="acme", integration_id="zap", integration_type="zapier", files=files, order=ORDER)

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)

    assert (outcome.status, outcome.final) == ("succeeded", True)
    [hook] = [
        r for r in webhook_receiver.requests_to("hooks/ok") if r.headers["Idempotency-Key"] == request.delivery_id
    ]
    body = hook.json()
    assert body["orderId"] == "6182665224482"
    assert body["orderNumber"] == "1022"
    assert body["event"] == "order_created"
    assert [(f["name"], f["mimeType"]) for f in body["files"]] == [(n, m) for n, (_, m) in FILES.items()]
    async with aiohttp.ClientSession() as http:
        for entry in body["files"]:
            async with http.get(entry["url"]) as response:
                assert response.status == 200
                assert await response.read() == FILES[entry["name"]][0]
                assert entry["name"] in response.headers["Content-Disposition"]


async def test_cancellation_posts_event_order_cancelled_with_links_to_the_notice_files(
    zapier_app: FastStream, outcomes: OutcomeCollector, store: LocalDirectoryStore, webhook_receiver: WebhookReceiver
) -> None:
    notice = {
        "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Cancellation.json": (
            b'{"event": "order_cancelled", "orderNumber": "1022"}',
            "application/json",
        ),
    }
    files = await store_bundle(store, notice)
    request = deliver_bundle(
        tenant="acme",
        integration_id="zap",
        integration_type="zapier",
        files=files,
        order=ORDER.model_copy(update={"status": "cancelled"}),
    ).model_copy(update={"reason": "order_cancelled"})

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)

    assert (outcome.status, outcome.reason) == ("succeeded", "order_cancelled")
    [hook] = [
        r for r in webhook_receiver.requests_to("hooks/ok") if r.headers["Idempotency-Key"] == request.delivery_id
    ]
    body = hook.json()
    assert body["event"] == "order_cancelled"
    assert (body["orderId"], body["orderNumber"]) == ("6182665224482", "1022")
    [entry] = body["files"]
    assert entry["name"] == "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Cancellation.json"
    async with aiohttp.ClientSession() as http, http.get(entry["url"]) as response:
        assert response.status == 200
        assert await response.read() == notice[entry["name"]][0]


async def test_recipe_feed_delivery_carries_recipe_id_instead_of_order_fields(
    zapier_app: FastStream, outcomes: OutcomeCollector, store: LocalDirectoryStore, webhook_receiver: WebhookReceiver
) -> None:
    files = await store_bundle(store, {"999-63CHGJokGoxPfSba.json": (b"{}", "application/json")})
    request = deliver_bundle(tenant="acme", integration_id="zap", integration_type="zapier", files=files)

    await outcomes.publish(request)
    await outcomes.wait_for(request.delivery_id)

    [hook] = [
        r for r in webhook_receiver.requests_to("hooks/ok") if r.headers["Idempotency-Key"] == request.delivery_id
    ]
    body = hook.json()
    assert body["recipeId"] == "999-63CHGJokGoxPfSba"
    assert body["event"] == "recipe_saved"
    assert "orderId" not in body
    assert "orderNumber" not in body


async def test_expired_download_link_is_refused(
    file_server: str, store: LocalDirectoryStore, link_settings: LinkSettings
) -> None:
    [file] = await store_bundle(store, {"999-x.json": (b"{}", "application/json")})
    expired = LinkSigner(link_settings).url_for(
        file.key, file.name, file.mime_type, now=time.time() - link_settings.ttl_s - 60
    )
    fresh = LinkSigner(link_settings).url_for(file.key, file.name, file.mime_type)

    async with aiohttp.ClientSession() as http:
        async with http.get(expired) as response:
            assert response.status == 410
        async with http.get(fresh) as response:
            assert response.status == 200
        async with http.get(fresh.replace("/files/", "/files/x")) as response:
            assert response.status == 404


async def test_hook_429_with_retry_after_gives_retrying_outcome_and_retry_command_keeping_it(
    zapier_app: FastStream, outcomes: OutcomeCollector, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.script("hooks/busy", Reply(429, {"Retry-After": "2"}))
    request = deliver_bundle(tenant="acme", integration_id="zap-busy", integration_type="zapier", files=(), order=ORDER)

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)
    retry = await outcomes.wait_for_retry(request.delivery_id)

    assert (outcome.status, outcome.final) == ("retrying", False)
    assert outcome.error_message == "hook at 127.0.0.1 answered 429"
    assert retry.retry_after_s == 2
    assert retry.request == request


async def test_hook_500_is_retried_later(
    zapier_app: FastStream, outcomes: OutcomeCollector, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.script("hooks/broken", Reply(500))
    request = deliver_bundle(tenant="acme", integration_id="zap-broken", integration_type="zapier", files=())

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)
    retry = await outcomes.wait_for_retry(request.delivery_id)

    assert outcome.status == "retrying"
    assert retry.retry_after_s is None


async def test_hook_400_fails_permanently_after_exactly_one_attempt(
    zapier_app: FastStream, outcomes: OutcomeCollector, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.script("hooks/rejects", Reply(400), Reply(400))
    request = deliver_bundle(tenant="acme", integration_id="zap-rejects", integration_type="zapier", files=())
    later = deliver_bundle(tenant="acme", integration_id="zap", integration_type="zapier", files=())

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)
    # Same key, so same partition: once the later request is done, a re-read of the first would have shown.
    await outcomes.publish(later.model_copy(update={"recipe_id": request.recipe_id}))
    await outcomes.wait_for(later.delivery_id)

    assert (outcome.status, outcome.final, outcome.error_class) == ("failed", True, "PermanentError")
    assert outcome.error_message == "hook at 127.0.0.1 answered 400"
    assert len(outcomes.outcomes[request.delivery_id]) == 1
    assert request.delivery_id not in outcomes.retries
    assert len(webhook_receiver.requests_to("hooks/rejects")) == 1
