"""The committed AsyncAPI document (the OMS teams' contract for orders.events.v1) matches the code."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
COMMITTED = ROOT / "docs" / "asyncapi" / "association-store.json"


def test_committed_asyncapi_document_is_current(tmp_path: Path) -> None:
    generated = tmp_path / "association-store.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "faststream",
            "docs",
            "gen",
            "relay_association_store.main:create_app",
            "--factory",
            "--out",
            str(generated),
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert json.loads(generated.read_text()) == json.loads(COMMITTED.read_text()), "run `make asyncapi` and commit"


def test_orders_events_channel_documents_the_message_oms_teams_publish() -> None:
    document = json.loads(COMMITTED.read_text())
    internal = document["channels"]["order-events:OmsOrderEvent:orders.events.v1"]
    assert internal["address"] == "orders.events.v1"
    # Each tenant's OMS publishes to its own topic (the tenant comes from the topic, locked down by ACLs).
    oms = document["channels"]["order-events:OmsOrderEvent:oms.demo.orders.v1"]
    assert oms["address"] == "oms.demo.orders.v1"
    assert "deploy/kafka-acls.md" in json.dumps(oms)
    payload_names = json.dumps(document["components"]["schemas"]["OmsOrderEvent"])
    for field in ("orderId", "orderNumber", "occurredAt", "eventId", "items"):
        assert field in payload_names
