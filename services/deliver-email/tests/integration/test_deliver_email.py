"""deliver-email end to end: DeliverBundle on the real broker -> e-mail at a real SMTP server -> outcome."""

from collections.abc import AsyncIterator, Callable

import pytest
from faststream import FastStream

from relay_contracts.messages import OrderLine
from relay_deliver_email.main import create_app
from relay_deliver_email.settings import Settings
from relay_delivery.testing import OutcomeCollector, deliver_bundle, running_app, store_bundle
from relay_devservers.smtp import CapturedMail, SmtpCapture
from relay_platform.links import LinkSettings, LinkSigner
from relay_platform.objectstore import LocalDirectoryStore

pytestmark = pytest.mark.integration

ORDER = OrderLine(order_id="6182665224482", order_number="1022", item_id="1", item_quantity=2)
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40
FILES = {
    "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf": (PDF, "application/pdf"),
    "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba.json": (b'{"recipeId": "999-63CHGJokGoxPfSba"}', "application/json"),
    "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_front.png": (b"\x89PNG\r\n\x1a\n" + b"\0" * 300, "image/png"),
}


@pytest.fixture(scope="module")
async def app(smtp_server: SmtpCapture, email_settings: Callable[[], Settings]) -> AsyncIterator[FastStream]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DELIVER_EMAIL_SMTP_PASSWORD", smtp_server.password or "")
        settings = email_settings()
    async with running_app(create_app(settings)) as running:
        yield running


def with_delivery(delivery_id: str) -> Callable[[CapturedMail], bool]:
    return lambda mail: delivery_id in (mail.message["Message-ID"] or "")


async def test_bundle_is_emailed_with_every_file_attached_byte_equal_under_its_seed_name(
    app: FastStream, outcomes: OutcomeCollector, store: LocalDirectoryStore, smtp_server: SmtpCapture
) -> None:
    files = await store_bundle(store, FILES)
    request = deliver_bundle(
        tenant="acme", integration_id="ops-mail", integration_type="email", files=files, order=ORDER
    )

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)

    assert (outcome.status, outcome.final, outcome.attempt) == ("succeeded", True, 1)
    assert set(outcome.files) == set(FILES)
    mail = await smtp_server.wait_for_async(with_delivery(request.delivery_id))
    assert mail.attachments() == {name: data for name, (data, _) in FILES.items()}
    assert sorted(mail.rcpt_tos) == ["backup@acme.example", "production@acme.example"]
    message = mail.message
    assert message["Subject"] == "[ACME] Order 1022: recipe 999-63CHGJokGoxPfSba"
    assert message["Message-ID"] == f"<relay-delivery-{request.delivery_id}@relay.test>"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "order 1022" in text
    assert "Attached files (3)" in text


async def test_cancellation_is_emailed_as_a_cancellation_notice_with_its_files(
    app: FastStream, outcomes: OutcomeCollector, store: LocalDirectoryStore, smtp_server: SmtpCapture
) -> None:
    notice_files = {
        "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Cancellation.json": (
            b'{"event": "order_cancelled", "orderNumber": "1022"}',
            "application/json",
        ),
        "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf": (PDF, "application/pdf"),
    }
    files = await store_bundle(store, notice_files)
    request = deliver_bundle(
        tenant="acme",
        integration_id="ops-mail",
        integration_type="email",
        files=files,
        order=ORDER.model_copy(update={"status": "cancelled"}),
    ).model_copy(update={"reason": "order_cancelled"})

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)

    assert (outcome.status, outcome.final, outcome.reason) == ("succeeded", True, "order_cancelled")
    mail = await smtp_server.wait_for_async(with_delivery(request.delivery_id))
    assert mail.message["Subject"] == "[ACME] Order cancelled: 1022"
    assert mail.attachments() == {name: data for name, (data, _) in notice_files.items()}
    text = mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Order 1022 (order ID 6182665224482) was cancelled." in text
    assert "Do not produce it" in text


async def test_files_above_the_attachment_limit_are_sent_as_signed_expiring_links(
    app: FastStream,
    outcomes: OutcomeCollector,
    store: LocalDirectoryStore,
    smtp_server: SmtpCapture,
    link_settings: LinkSettings,
) -> None:
    files = await store_bundle(store, FILES)
    request = deliver_bundle(tenant="acme", integration_id="tiny-limit", integration_type="email", files=files)

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)

    assert outcome.status == "succeeded"
    mail = await smtp_server.wait_for_async(with_delivery(request.delivery_id))
    assert mail.attachments() == {}
    assert mail.message["Subject"] == "Recipe 999-63CHGJokGoxPfSba"
    text = mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    urls = [line.rsplit(": ", 1)[1] for line in text.splitlines() if "http://files.test:8080/files/" in line]
    assert len(urls) == 3
    served = {LinkSigner(link_settings).verify(url.rsplit("/", 1)[1]) for url in urls}
    assert served == {(f.key, f.name, f.mime_type) for f in files}
    for key, _, _ in served:
        assert await store.get(key) in {data for data, _ in FILES.values()}


async def test_redelivery_of_the_same_delivery_carries_the_same_message_id(
    app: FastStream, outcomes: OutcomeCollector, store: LocalDirectoryStore, smtp_server: SmtpCapture
) -> None:
    files = await store_bundle(store, FILES)
    first = deliver_bundle(tenant="acme", integration_id="ops-mail", integration_type="email", files=files, order=ORDER)
    second = first.model_copy(update={"attempt": 2})

    await outcomes.publish(first)
    await outcomes.publish(second)
    attempts = await outcomes.wait_for(first.delivery_id, count=2)

    assert sorted(o.attempt for o in attempts) == [1, 2]
    await smtp_server.wait_for_async(lambda m: len(smtp_server.find(with_delivery(first.delivery_id))) == 2)
    ids = {m.message["Message-ID"] for m in smtp_server.find(with_delivery(first.delivery_id))}
    assert ids == {f"<relay-delivery-{first.delivery_id}@relay.test>"}


@pytest.mark.parametrize("integration_id", ["paused", "not-configured"])
async def test_disabled_or_unknown_integration_gives_one_final_failed_outcome(
    app: FastStream, outcomes: OutcomeCollector, integration_id: str
) -> None:
    request = deliver_bundle(tenant="acme", integration_id=integration_id, integration_type="email", files=())

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)

    assert (outcome.status, outcome.final, outcome.error_class) == ("failed", True, "IntegrationUnavailableError")
    assert outcomes.retries.get(request.delivery_id) is None
