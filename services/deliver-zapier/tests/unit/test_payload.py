"""The Zapier payload and Retry-After parsing."""

import hashlib
from datetime import UTC, datetime

from relay_contracts.messages import BundleFile, OrderLine
from relay_deliver_zapier.adapters.http import retry_after_s
from relay_deliver_zapier.domain import payload
from relay_delivery import FetchedFile
from relay_delivery.testing import deliver_bundle


def test_order_payload_matches_seed_shape() -> None:
    data = b"%PDF"
    meta = BundleFile(
        name="1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf",
        mime_type="application/pdf",
        size=4,
        sha256=hashlib.sha256(data).hexdigest(),
        key="k",
    )
    order = OrderLine(order_id="6182665224482", order_number="1022")
    request = deliver_bundle(tenant="t", integration_id="z", integration_type="zapier", files=(meta,), order=order)

    body = payload(request, [(FetchedFile(meta=meta, data=data), "https://x/files/t")])

    assert body == {
        "orderId": "6182665224482",
        "orderNumber": "1022",
        "recipeId": "999-63CHGJokGoxPfSba",
        "event": "order_created",
        "files": [
            {
                "name": "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf",
                "mimeType": "application/pdf",
                "url": "https://x/files/t",
            }
        ],
    }


def test_lifecycle_event_payloads_carry_the_trigger_reason_as_event() -> None:
    data = b'{"event": "order_cancelled"}'
    meta = BundleFile(
        name="1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Cancellation.json",
        mime_type="application/json",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        key="k",
    )
    order = OrderLine(order_id="6182665224482", order_number="1022", status="cancelled")
    request = deliver_bundle(tenant="t", integration_id="z", integration_type="zapier", files=(meta,), order=order)

    for reason in ("order_cancelled", "order_refunded", "order_returned", "order_updated"):
        body = payload(request.model_copy(update={"reason": reason}), [(FetchedFile(meta=meta, data=data), "u")])
        assert body["event"] == reason
        assert (body["orderId"], body["orderNumber"]) == ("6182665224482", "1022")
        assert body["files"] == [{"name": meta.name, "mimeType": "application/json", "url": "u"}]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s("2") == 2
    assert retry_after_s("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30
    assert retry_after_s("soon") is None
    assert retry_after_s(None) is None
