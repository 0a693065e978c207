"""Each message's JSON Schema is pinned in a snapshot, so a breaking contract change is seen in review.

Within a schema version only optional fields may be added. After an intended change, regenerate with
``UPDATE_SNAPSHOTS=1 uv run pytest libs/contracts`` and review the diff.
"""

import json
import os
from pathlib import Path

import pytest
from pydantic import BaseModel

from relay_contracts import messages
from relay_contracts.topics import ALL_TOPICS, INTEGRATION_TYPES, deliveries_requested

SNAPSHOTS = Path(__file__).parent / "snapshots"
MODELS: list[type[BaseModel]] = [
    messages.RecipeSaved,
    messages.OrderEventOccurred,
    messages.IntegrationsTriggered,
    messages.DeliverBundle,
    messages.DeliveryAttempted,
    messages.RetryDelivery,
    messages.MessageDeadLettered,
    messages.IntegrationStateChanged,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_message_schema_matches_snapshot(model: type[BaseModel]) -> None:
    schema = json.dumps(model.model_json_schema(by_alias=True), indent=2, sort_keys=True) + "\n"
    snapshot = SNAPSHOTS / f"{model.__name__}.json"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        snapshot.write_text(schema)
    assert snapshot.exists(), f"no snapshot for {model.__name__}; run with UPDATE_SNAPSHOTS=1"
    assert schema == snapshot.read_text(), f"{model.__name__}'s contract changed; see this test's docstring"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_message_carries_a_schema_version(model: type[BaseModel]) -> None:
    assert model.model_fields["schema_version"].default == 1


def test_wire_names_are_camel_case() -> None:
    event = messages.OrderEventOccurred.model_validate(
        {
            "eventId": "e",
            "tenant": "demo",
            "type": "linked",
            "orderId": "1",
            "orderNumber": "1001",
            "items": [{"recipeId": "999-a", "itemId": "2", "itemQuantity": 1}],
            "occurredAt": "2026-01-01T00:00:00Z",
        }
    )
    wire = json.loads(event.model_dump_json())
    assert {"eventId", "orderId", "orderNumber", "occurredAt", "schemaVersion"} <= wire.keys()
    assert wire["items"][0] == {"recipeId": "999-a", "itemId": "2", "itemQuantity": 1}


def test_unknown_fields_from_publishers_are_dropped_on_decode() -> None:
    event = messages.OrderEventOccurred.model_validate(
        {
            "eventId": "e",
            "tenant": "demo",
            "type": "created",
            "orderId": "1",
            "orderNumber": "1001",
            "occurredAt": "2026-01-01T00:00:00Z",
            "customerEmail": "jane@example.com",
        }
    )
    assert "jane@example.com" not in event.model_dump_json()


def test_topic_names_are_versioned_and_one_per_destination_type() -> None:
    assert all(topic.endswith(".v1") for topic in ALL_TOPICS)
    assert len(set(ALL_TOPICS)) == len(ALL_TOPICS)
    assert deliveries_requested("azure-blob") == "deliveries.requested.azure-blob.v1"
    assert {deliveries_requested(t) for t in INTEGRATION_TYPES} <= set(ALL_TOPICS)
