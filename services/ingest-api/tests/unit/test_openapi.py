"""The OpenAPI document: valid 3.1, every endpoint, security schemes, refs that resolve."""

from __future__ import annotations

import json
import re
from typing import Any

import schemathesis
from jsonschema import Draft202012Validator
from schemathesis.core.result import Ok

from relay_ingest_api.openapi import openapi_document


def _document() -> dict[str, Any]:
    return openapi_document(max_items=1000, max_body=5 * 1024 * 1024)


def test_every_ref_resolves() -> None:
    document = _document()
    for ref in set(re.findall(r'"\$ref": "#/([^"]+)"', json.dumps(document))):
        node: Any = document
        for part in ref.split("/"):
            node = node[part]
        assert node is not None


def test_component_schemas_are_valid_json_schema() -> None:
    for schema in _document()["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_schemathesis_loads_every_operation() -> None:
    schema = schemathesis.openapi.from_dict(_document())
    results = list(schema.get_all_operations())
    assert all(isinstance(r, Ok) for r in results)
    operations = {(r.ok().method.upper(), r.ok().path) for r in results if isinstance(r, Ok)}
    assert ("POST", "/api/v2/recipe/order") in operations
    assert ("GET", "/recipe/{id}.json") in operations
    assert ("GET", "/recipe/{id}.pdf") in operations
    assert ("POST", "/api/v2/integrations/trigger") in operations
    assert ("GET", "/api/v2/admin/audit") in operations
    assert ("GET", "/api/v2/orders/recent") in operations
    assert ("GET", "/api/v2/deliveries/failed") in operations
    assert ("GET", "/api/v2/integrations") in operations
    assert ("POST", "/api/v2/deliveries/replay") in operations
    assert ("POST", "/api/v2/integrations/{integrationId}/pause") in operations
    assert ("POST", "/api/v2/integrations/{integrationId}/resume") in operations
    assert ("POST", "/api/v2/integrations/shopify/{tenant}/webhooks") in operations
    assert len(operations) == 19


def test_security_schemes_are_apikey_query_and_bearer() -> None:
    document = _document()
    assert document["components"]["securitySchemes"] == {
        "apiKeyQuery": {"type": "apiKey", "in": "query", "name": "apikey"},
        "bearerAuth": {"type": "http", "scheme": "bearer"},
    }
    order = document["paths"]["/api/v2/recipe/order"]["post"]
    assert order["requestBody"]["content"]["application/json"]["schema"]["maxItems"] == 1000
    assert set(order["responses"]) == {"202", "400", "401", "403", "413", "429", "503"}


def test_field_constraints_reach_the_document() -> None:
    schemas = _document()["components"]["schemas"]
    quantity = schemas["OrderAssociation"]["properties"]["itemQuantity"]
    assert (quantity["type"], quantity["minimum"], quantity["maximum"]) == ("integer", 0, 1_000_000)
    assert set(schemas["OrderAssociation"]["required"]) == {"recipeId", "orderNumber", "itemId", "itemQuantity"}
    assert "required" not in schemas["RecipeInput"]
    assert schemas["Recipe"]["required"] == ["id", "created"]


def test_trigger_body_is_exactly_one_criterion_and_answers_the_trigger_list() -> None:
    document = _document()
    request = document["components"]["schemas"]["TriggerRequest"]
    assert request["oneOf"] == [{"required": ["recipeId"]}, {"required": ["orderId"]}, {"required": ["orderNumber"]}]
    assert request["additionalProperties"] is False
    operation = document["paths"]["/api/v2/integrations/trigger"]["post"]
    assert set(operation["responses"]) == {"202", "400", "401", "403", "404", "413", "429", "502", "503"}
    summary = document["components"]["schemas"]["TriggerSummary"]["properties"]
    assert {"triggerId", "recipeId", "orderId", "orderNumber", "integrationIds"} <= set(summary)


def test_pick_ticket_is_documented_as_a_pdf() -> None:
    operation = _document()["paths"]["/recipe/{id}.pdf"]["get"]
    assert "application/pdf" in operation["responses"]["200"]["content"]
    assert operation["security"][0] == {}


def test_console_reads_document_their_parameters_and_answers() -> None:
    document = _document()
    paths = document["paths"]
    recent = paths["/api/v2/orders/recent"]["get"]
    assert {p["name"] for p in recent["parameters"]} == {"limit", "after"}
    assert recent["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/OrdersPage")
    failed = paths["/api/v2/deliveries/failed"]["get"]
    assert {p["name"] for p in failed["parameters"]} == {"integrationId", "since", "until", "limit", "after"}
    assert failed["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/DeliveriesPage")
    overview = paths["/api/v2/integrations"]["get"]
    [hours] = overview["parameters"]
    assert (hours["schema"]["minimum"], hours["schema"]["maximum"], hours["schema"]["default"]) == (1, 2160, 24)
    for operation in (recent, failed, overview):
        assert set(operation["responses"]) == {"200", "400", "401", "403", "429", "502", "503"}
    shown = document["components"]["schemas"]["IntegrationOverview"]["properties"]
    assert set(shown) == {
        "id", "type", "description", "feeds", "enabled", "counts", "windowHours", "lastSuccessAt", "lastFailureAt",
        "state", "stateChangedAt", "stateReason", "stateCause", "stateChangedBy",
    }  # fmt: skip


def test_pause_and_resume_need_admin_and_say_they_stop_deliveries() -> None:
    paths = _document()["paths"]
    for path in ("/api/v2/integrations/{integrationId}/pause", "/api/v2/integrations/{integrationId}/resume"):
        operation = paths[path]["post"]
        assert "admin permission" in operation["description"]
        assert operation["requestBody"]["required"] is False
        assert set(operation["responses"]) >= {"202", "400", "401", "403", "404"}
    assert "stops every delivery" in paths["/api/v2/integrations/{integrationId}/pause"]["post"]["description"]


def test_deliveries_of_the_lookup_and_the_lists_document_held_and_its_cause() -> None:
    schemas = _document()["components"]["schemas"]
    for model in ("FoundDelivery", "ListedDelivery"):
        properties = schemas[model]["properties"]
        assert properties["held"]["type"] == "boolean"
        assert properties["held"]["default"] is False
        assert "paused" in properties["held"]["description"]
        causes = next(option for option in properties["heldCause"]["anyOf"] if option.get("type") == "string")
        assert causes["enum"] == ["operator", "unhealthy"]
        assert "destination-health" in properties["heldCause"]["description"]
    paths = _document()["paths"]
    for path in ("/api/v2/orders", "/api/v2/orders/recent"):
        assert "`held: true`" in paths[path]["get"]["description"]


def test_the_shopify_webhook_is_signed_not_keyed_and_documents_its_headers() -> None:
    operation = _document()["paths"]["/api/v2/integrations/shopify/{tenant}/webhooks"]["post"]
    assert operation["security"] == []
    headers = {p["name"]: p["required"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {
        "X-Shopify-Hmac-Sha256": True,
        "X-Shopify-Topic": True,
        "X-Shopify-Webhook-Id": True,
        "X-Shopify-Triggered-At": False,
    }
    assert set(operation["responses"]) == {"202", "400", "401", "413", "429", "502", "503"}
    assert "discarded" in operation["description"]
