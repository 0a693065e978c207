"""The e-mail composed for a delivery: subject, deterministic Message-ID, attachments or links, no PII."""

import hashlib

from relay_contracts.messages import BundleFile, OrderLine
from relay_deliver_email.domain import compose, message_id, subject
from relay_delivery import FetchedFile
from relay_delivery.testing import deliver_bundle
from relay_platform.tenants import EmailIntegration

INTEGRATION = EmailIntegration(
    id="mail", type="email", to=("a@acme.example", "b@acme.example"), subject_prefix="[ACME]"
)


def fetched(name: str, data: bytes, mime: str) -> FetchedFile:
    meta = BundleFile(
        name=name, mime_type=mime, size=len(data), sha256=hashlib.sha256(data).hexdigest(), key=f"k/{name}"
    )
    return FetchedFile(meta=meta, data=data)


def test_subject_names_the_order_number_and_recipe_and_marks_updates() -> None:
    order = OrderLine(order_id="6182665224482", order_number="1022")
    request = deliver_bundle(tenant="t", integration_id="mail", integration_type="email", files=(), order=order)
    updated = request.model_copy(update={"reason": "order_updated"})

    assert subject(request, "[ACME]") == "[ACME] Order 1022: recipe 999-63CHGJokGoxPfSba"
    assert subject(updated, "") == "Order 1022: recipe 999-63CHGJokGoxPfSba (updated)"


def test_cancellation_refund_and_return_subjects_say_what_happened_to_the_order() -> None:
    order = OrderLine(order_id="6182665224482", order_number="1022", item_id="14523", item_quantity=2)
    request = deliver_bundle(tenant="t", integration_id="mail", integration_type="email", files=(), order=order)

    def with_reason(reason: str) -> str:
        return subject(request.model_copy(update={"reason": reason}), "[ACME]")

    assert with_reason("order_cancelled") == "[ACME] Order cancelled: 1022"
    assert with_reason("order_refunded") == "[ACME] Order refunded: 1022"
    assert with_reason("order_returned") == "[ACME] Order returned: 1022"
    assert subject(request.model_copy(update={"reason": "order_cancelled"}), "") == "Order cancelled: 1022"


def test_cancellation_body_says_the_order_was_cancelled_and_not_to_produce_it() -> None:
    order = OrderLine(
        order_id="6182665224482", order_number="1022", item_id="14523", item_quantity=2, status="cancelled"
    )
    files = [
        fetched("1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Cancellation.json", b"{}", "application/json"),
        fetched("1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf", b"%PDF", "application/pdf"),
    ]
    request = deliver_bundle(
        tenant="t", integration_id="mail", integration_type="email", files=(), order=order
    ).model_copy(update={"reason": "order_cancelled"})

    message = compose(INTEGRATION, request, files, from_address="relay@mail.example", links=None)

    assert message["Subject"] == "[ACME] Order cancelled: 1022"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Order 1022 (order ID 6182665224482) was cancelled." in text
    assert "recipe 999-63CHGJokGoxPfSba (line item 14523, quantity 2" in text
    assert "Do not produce it" in text
    assert "stamped CANCELLED" in text
    assert {p.get_filename() for p in message.iter_attachments()} == {f.name for f in files}


def test_refund_body_says_the_order_was_refunded_without_a_production_instruction() -> None:
    order = OrderLine(order_id="6182665224482", order_number="1022", item_id="14523", item_quantity=2)
    files = [fetched("1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Refund.json", b"{}", "application/json")]
    request = deliver_bundle(
        tenant="t", integration_id="mail", integration_type="email", files=(), order=order
    ).model_copy(update={"reason": "order_refunded"})

    message = compose(INTEGRATION, request, files, from_address="relay@mail.example", links=None)

    assert message["Subject"] == "[ACME] Order refunded: 1022"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Order 1022 (order ID 6182665224482) was refunded." in text
    assert "Do not produce" not in text
    assert "Attached files (1)" in text


def test_message_id_depends_only_on_the_delivery() -> None:
    assert message_id("abc", "Relay <relay@mail.example>") == "<relay-delivery-abc@mail.example>"
    assert message_id("abc", "relay@mail.example") == message_id("abc", "Other <x@mail.example>")


def test_attachments_keep_their_names_and_bytes_and_body_lists_only_ids() -> None:
    files = [fetched("999-a-Ticket.pdf", b"%PDF", "application/pdf"), fetched("999-a.json", b"{}", "application/json")]
    request = deliver_bundle(tenant="t", integration_id="mail", integration_type="email", files=())

    message = compose(INTEGRATION, request, files, from_address="relay@mail.example", links=None)

    attached = {p.get_filename(): p.get_payload(decode=True) for p in message.iter_attachments()}
    assert attached == {"999-a-Ticket.pdf": b"%PDF", "999-a.json": b"{}"}
    assert message["To"] == "a@acme.example, b@acme.example"
    assert message["X-Relay-Delivery-Id"] == request.delivery_id


def test_links_replace_attachments_when_given() -> None:
    files = [fetched("999-a-Ticket.pdf", b"%PDF", "application/pdf")]
    request = deliver_bundle(tenant="t", integration_id="mail", integration_type="email", files=())

    message = compose(
        INTEGRATION,
        request,
        files,
        from_address="relay@mail.example",
        links={"999-a-Ticket.pdf": "https://files.example/files/tok"},
        links_valid_for_s=7 * 86400,
    )

    assert list(message.iter_attachments()) == []
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "999-a-Ticket.pdf (4 B): https://files.example/files/tok" in text
    assert "expire in 7 days" in text
