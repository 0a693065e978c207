"""The OpenAPI 3.1 document of the ingest API, built from the pydantic models and the seed 001 schema.

Lookups and audits relay the association store's answers unchanged, so they are documented by the internal API's
models (``relay_contracts.internal_api``).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from relay_contracts.internal_api import (
    DEFAULT_AUDIT_LIMIT,
    DEFAULT_PAGE_LIMIT,
    MAX_AUDIT_LIMIT,
    MAX_CURSOR_TEXT,
    MAX_PAGE_LIMIT,
    MAX_QUERY_TEXT,
    ORDERS_PAGE_SIZE,
    AuditReport,
    DeliveriesPage,
    OrdersPage,
)
from relay_contracts.oms_api import OrderAssociation, OrderLifecycleEvent
from relay_contracts.recipe import RECIPE_LIMITS, RecipeLimits, recipe_schema
from relay_contracts.types import ID_PATTERN
from relay_ingest_api.domain import (
    DEFAULT_MAX_TRIGGER_FANOUT,
    DEFAULT_OLDER_THAN,
    DEFAULT_STATS_HOURS,
    DURATION_PATTERN,
    INTEGRATION_ID_PATTERN,
    MAX_INSTANT_TEXT,
    MAX_STATS_HOURS,
)
from relay_ingest_api.schemas import (
    Accepted,
    ErrorBody,
    Health,
    IntegrationsOverview,
    IntegrationStateAccepted,
    IntegrationStateRequest,
    Readiness,
    RecipeCreated,
    ReplayAccepted,
    ReplayRequest,
    ShopifyAccepted,
    TriggerRequest,
    TriggersAccepted,
)

_REF = "#/components/schemas/{model}"
_HELD_NOTE = (
    "A delivery not ended (`pending`, `retrying`) whose integration is paused now has `held: true` and says why in "
    "`heldCause` (`operator` or `unhealthy`): it is not attempted until the integration is resumed."
)
_SECURED: list[dict[str, list[str]]] = [{"apiKeyQuery": []}, {"bearerAuth": []}]

_ERRORS = {
    "400": ("BadRequest", "Malformed JSON or invalid fields; `problems` lists each bad field by JSON pointer."),
    "401": ("UnauthorizedError", "No API key, or an unknown one."),
    "403": ("ForbiddenError", "The API key lacks the needed permission."),
    "404": ("NotFoundError", "No such resource (also for another tenant's key-protected recipe)."),
    "410": ("Gone", "The download link has expired."),
    "413": (
        "TooLargeError",
        "Too many items (in a batch, or in a recipe's arrays: `problems` names the array and the limit) "
        "or too many bytes.",
    ),
    "429": ("TooManyRequests", "Over the API key's rate limit; retry after `Retry-After` seconds."),
    "502": ("BadGateway", "The association store gave an unusable answer."),
    "503": ("Unavailable", "A backing service is unreachable; retry after `Retry-After` seconds."),
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _model_schemas() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (OrderAssociation, "validation"),
        (OrderLifecycleEvent, "validation"),
        (Accepted, "serialization"),
        (RecipeCreated, "serialization"),
        (ErrorBody, "serialization"),
        (Health, "serialization"),
        (Readiness, "serialization"),
        (OrdersPage, "serialization"),
        (TriggerRequest, "validation"),
        (TriggersAccepted, "serialization"),
        (AuditReport, "serialization"),
        (DeliveriesPage, "serialization"),
        (IntegrationsOverview, "serialization"),
        (ReplayRequest, "validation"),
        (ReplayAccepted, "serialization"),
        (IntegrationStateRequest, "validation"),
        (IntegrationStateAccepted, "serialization"),
        (ShopifyAccepted, "serialization"),
    ]
    _, top = models_json_schema(models, ref_template=_REF)
    schemas: dict[str, Any] = top["$defs"]
    return schemas


def recipe_limits_note(limits: RecipeLimits) -> str:
    """The recipe limits in words (the seed schema has none; these are checked besides it)."""
    return (
        f"Limits (INGEST_API_RECIPE_MAX_*): at most {limits.max_components} components, {limits.max_views} views, "
        f"{limits.max_attachments} attachments and {limits.max_array_items} items in any other array (413 "
        f"`recipe_too_large` beyond, naming the array); strings and object keys of at most "
        f"{limits.max_string_length} characters, without NUL or lone surrogates; at most {limits.max_depth} levels "
        "of nesting; integers within 64 bits, no NaN or Infinity (400 `invalid_recipe` otherwise, by JSON pointer)."
    )


def _recipe_schemas(limits: RecipeLimits) -> dict[str, Any]:
    """The seed 001 schema with its ``$defs`` hoisted into components (refs rewritten to match); the input form
    also carries the API's limits (``maxItems`` where the limit is on one array, the rest in its description)."""
    text = json.dumps(recipe_schema()).replace('"#/$defs/', '"#/components/schemas/')
    schema: dict[str, Any] = json.loads(text)
    defs: dict[str, Any] = schema.pop("$defs", {})
    for keyword in ("$schema", "$id"):
        schema.pop(keyword, None)
    saved = copy.deepcopy(schema)
    saved["title"] = "RecipeInput"
    note = recipe_limits_note(limits)
    saved["description"] = f"A recipe to save; `id` and `created` are assigned when absent. {note}"
    saved.pop("required", None)
    # The API also insists the ID is the tenant's: ``<prefix>-<1-100 safe characters>``.
    saved["properties"] = {
        **saved["properties"],
        "id": {**saved["properties"]["id"], "pattern": "^[A-Za-z0-9]{1,16}-[A-Za-z0-9_-]{1,100}$"},
        "components": {**saved["properties"]["components"], "maxItems": limits.max_components},
        "views": {**saved["properties"]["views"], "maxItems": limits.max_views},
        "attachments": {**saved["properties"]["attachments"], "maxItems": limits.max_attachments},
    }
    return {**defs, "Recipe": schema, "RecipeInput": saved}


def _json_content(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _responses(ok: dict[str, Any], *errors: str) -> dict[str, Any]:
    responses = dict(ok)
    for status in errors:
        name = _ERRORS[status][0]
        responses[status] = {"$ref": f"#/components/responses/{name}"}
    return responses


def _batch_body(model: str, max_items: int, description: str) -> dict[str, Any]:
    return {
        "required": True,
        "description": description,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "maxItems": max_items,
                    "items": {"$ref": f"#/components/schemas/{model}"},
                }
            }
        },
    }


# No control characters (C0, DEL, C1) and not U+FFFD-U+FFFF: the documented part of "printable" (the check refuses
# more, such as format characters like U+200B and U+202E).
_CURSOR_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f\ufffd-\uffff]+$"


def _page_params(what: str) -> list[dict[str, Any]]:
    """``limit`` and ``after`` of a newest-first list."""
    return [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": f"At most this many {what} (ASCII digits).",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_LIMIT, "default": DEFAULT_PAGE_LIMIT},
        },
        {
            "name": "after",
            "in": "query",
            "required": False,
            "description": "The `next` of the previous page (an opaque cursor); 400 naming `after` when it is not "
            "one of this list's.",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR_TEXT, "pattern": _CURSOR_PATTERN},
        },
    ]


def _instant_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"{description} RFC 3339 with a time zone (2026-12-01T10:00:00Z); years 0001-9998 in UTC.",
        "schema": {"type": "string", "format": "date-time", "maxLength": MAX_INSTANT_TEXT},
    }


def _state_change(state: str) -> dict[str, Any]:
    """``POST /api/v2/integrations/{integrationId}/pause`` or ``/resume``."""
    pause = state == "paused"
    what = (
        "Pause an integration: from now on its delivery requests are held, neither attempted nor failed, and kept "
        "until it is resumed. This stops every delivery to that destination for the whole tenant, so it needs the "
        "admin permission. Pausing a paused integration is allowed (a newer change, nothing else)."
        if pause
        else "Resume an integration: everything held while it was paused is requested again, oldest first, and "
        "delivered. Needs the admin permission (the operator action that restarts a destination's deliveries). "
        "Resuming an active integration is allowed."
    )
    return {
        "post": {
            "operationId": "pauseIntegration" if pause else "resumeIntegration",
            "summary": "Pause an integration's deliveries." if pause else "Resume a paused integration's deliveries.",
            "description": f"{what} The tenant is the API key's: an integration of another tenant is a 404, like "
            "one nobody has. The change is published durably (integrations.control.v1) before the 202; "
            "`GET /api/v2/integrations` shows it once the association store has read it (the newest `changedAt` "
            "wins).",
            "security": _SECURED,
            "parameters": [
                {
                    "name": "integrationId",
                    "in": "path",
                    "required": True,
                    "description": "One of the caller's tenant's integrations (enabled or not).",
                    "schema": {"type": "string", "pattern": INTEGRATION_ID_PATTERN},
                }
            ],
            "requestBody": {"required": False, "content": _json_content("IntegrationStateRequest")},
            "responses": _responses(
                {
                    "202": {
                        "description": "The change is durably published.",
                        "content": _json_content("IntegrationStateAccepted"),
                    }
                },
                "400",
                "401",
                "403",
                "404",
                "413",
                "429",
                "503",
            ),
        }
    }


def _shopify_webhook() -> dict[str, Any]:
    """``POST /api/v2/integrations/shopify/{tenant}/webhooks``."""

    def header(name: str, description: str, *, required: bool = True) -> dict[str, Any]:
        return {
            "name": name,
            "in": "header",
            "required": required,
            "description": description,
            "schema": {"type": "string"},
        }

    return {
        "post": {
            "operationId": "receiveShopifyWebhook",
            "summary": "Receive a Shopify order webhook (orders/create, orders/updated, orders/cancelled, "
            "refunds/create).",
            "description": "Point the store's order webhooks here (JSON format). No API key: the delivery is "
            "authenticated by `X-Shopify-Hmac-Sha256`, the HMAC-SHA256 of the raw body under the tenant's "
            "`shopify.webhook-secret`; an unknown tenant, a tenant without Shopify and a wrong or missing signature "
            "all get the same 401 (repeated failures from one client: 429). Only the order ID and number, line item "
            "IDs, quantities (`current_quantity`), the recipe ID from the line-item property `shopify.recipe-property` "
            "(an ID or a recipe link; items without it are ignored, items naming another tenant's recipe are left out "
            "and counted) and the event time (`updated_at`, `cancelled_at`, the refund's `created_at`) are read; "
            "everything else (customer, addresses, e-mails, phones, payment, notes, IP) is discarded unread. A "
            "resend of a delivery (same `X-Shopify-Webhook-Id`) is the same event downstream, and an older event "
            "never overwrites newer state. A refund of every recipe item makes the order `refunded`; a partial one "
            "updates quantities. Other topics are acknowledged and ignored.",
            "security": [],
            "parameters": [
                {
                    "name": "tenant",
                    "in": "path",
                    "required": True,
                    "description": "The tenant whose store sends the webhook.",
                    "schema": {"type": "string", "pattern": INTEGRATION_ID_PATTERN},
                },
                header("X-Shopify-Hmac-Sha256", "Base64 HMAC-SHA256 of the raw body under the webhook secret."),
                header("X-Shopify-Topic", "orders/create, orders/updated, orders/cancelled or refunds/create."),
                header("X-Shopify-Webhook-Id", "The delivery's ID, the same for each retry (1-128 visible ASCII)."),
                header(
                    "X-Shopify-Triggered-At",
                    "When Shopify triggered the delivery (RFC 3339); older than `shopify.max-age-h` (72 h) is refused.",
                    required=False,
                ),
            ],
            "requestBody": {
                "required": True,
                "description": "Shopify's order (or refund) payload, as Shopify sends it.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": _responses(
                {
                    "202": {
                        "description": "Handled: the order event is durably published, or nothing was to be recorded "
                        "(`ignored` says why).",
                        "content": _json_content("ShopifyAccepted"),
                    }
                },
                "400",
                "401",
                "413",
                "429",
                "502",
                "503",
            ),
        }
    }


def _accepted() -> dict[str, Any]:
    return {"202": {"description": "Every event is durably published.", "content": _json_content("Accepted")}}


@cache
def openapi_document(
    *,
    max_items: int,
    max_body: int,
    recipe_limits: RecipeLimits = RECIPE_LIMITS,
    max_trigger_fanout: int = DEFAULT_MAX_TRIGGER_FANOUT,
) -> dict[str, Any]:
    """Every endpoint, its parameters, bodies, status codes and security, as OpenAPI 3.1."""
    schemas = {**_model_schemas(), **_recipe_schemas(recipe_limits)}
    # Like every ID: no control characters, U+FFFD (a bad percent-encoding) or lone surrogates, not only blanks.
    criterion = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": ID_PATTERN}
    lookup_params = [
        {
            # One exploded object so the document can say "exactly one of" (form style: ?orderNumber=1001).
            "name": "criteria",
            "in": "query",
            "required": True,
            "style": "form",
            "explode": True,
            "description": "Exactly one of orderNumber, orderId or recipeId.",
            "schema": {
                "type": "object",
                "properties": {"orderNumber": criterion, "orderId": criterion, "recipeId": criterion},
                "minProperties": 1,
                "maxProperties": 1,
                "additionalProperties": False,
            },
        }
    ]
    size_note = f"At most {max_items} items and {max_body} bytes per request."
    paths: dict[str, Any] = {
        "/api/v2/recipe/order": {
            "post": {
                "operationId": "linkOrderRecipes",
                "summary": "Associate order line items with recipes (seed 002).",
                "description": "Fields outside the allow-list (PII) are dropped and counted. " + size_note,
                "security": _SECURED,
                "requestBody": _batch_body("OrderAssociation", max_items, "Order-to-recipe associations."),
                "responses": _responses(_accepted(), "400", "401", "403", "413", "429", "503"),
            }
        },
        "/api/v2/orders/events": {
            "post": {
                "operationId": "postOrderEvents",
                "summary": "Order lifecycle events in a batch (created, updated, cancelled, refunded, returned).",
                "description": "Safe to resend: event IDs are stable. " + size_note,
                "security": _SECURED,
                "requestBody": _batch_body("OrderLifecycleEvent", max_items, "Order lifecycle events."),
                "responses": _responses(_accepted(), "400", "401", "403", "413", "429", "503"),
            }
        },
        "/api/v2/recipes": {
            "post": {
                "operationId": "saveRecipe",
                "summary": "Save a recipe (seed 001 schema); it is then served at /recipe/<id>.json.",
                "description": f"{recipe_limits_note(recipe_limits)} At most {max_body} bytes.",
                "security": _SECURED,
                "requestBody": {"required": True, "content": _json_content("RecipeInput")},
                "responses": _responses(
                    {
                        "201": {
                            "description": "Stored and announced.",
                            "headers": {"Location": {"schema": {"type": "string"}}},
                            "content": _json_content("RecipeCreated"),
                        }
                    },
                    "400",
                    "401",
                    "403",
                    "413",
                    "429",
                    "503",
                ),
            }
        },
        "/recipe/{id}.json": {
            "get": {
                "operationId": "getRecipe",
                "summary": "A saved recipe; public by ID or key-protected, per tenant.",
                "security": [{}, *_SECURED],
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{1,16}-[A-Za-z0-9_-]{1,100}$"},
                    }
                ],
                "responses": _responses(
                    {"200": {"description": "The recipe JSON as saved.", "content": _json_content("Recipe")}},
                    "401",
                    "403",
                    "404",
                    "429",
                    "503",
                ),
            }
        },
        "/recipe/{id}.pdf": {
            "get": {
                "operationId": "getRecipePickTicket",
                "summary": "The recipe's PDF pick ticket (its humanReadable link), rendered from the stored recipe.",
                "description": "Same access rules as /recipe/{id}.json. No preview thumbnails: the bundle's "
                "ticket has them. Rendered once per recipe version and cached; a render is charged to the caller "
                "(its API key, else its address: 429 past its rate) and waits briefly for a render slot (503 when "
                "none frees). `ETag` is the PDF's SHA-256; `If-None-Match` with it answers 304.",
                "security": [{}, *_SECURED],
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{1,16}-[A-Za-z0-9_-]{1,100}$"},
                    }
                ],
                "responses": _responses(
                    {
                        "200": {
                            "description": 'The pick ticket, `inline; filename="<id>.pdf"`.',
                            "headers": {
                                "Content-Disposition": {"schema": {"type": "string"}},
                                "ETag": {"schema": {"type": "string"}},
                            },
                            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
                        },
                        "304": {
                            "description": "`If-None-Match` names this ticket's ETag: no body.",
                            "headers": {"ETag": {"schema": {"type": "string"}}},
                        },
                    },
                    "401",
                    "403",
                    "404",
                    "429",
                    "503",
                ),
            }
        },
        "/files/{token}": {
            "get": {
                "operationId": "getFile",
                "summary": "An artifact behind a signed, expiring download link.",
                "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": _responses(
                    {
                        "200": {
                            "description": "The file, with its name in Content-Disposition.",
                            "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
                            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                        }
                    },
                    "404",
                    "410",
                    "503",
                ),
            }
        },
        "/api/v2/orders": {
            "get": {
                "operationId": "findOrders",
                "summary": "The caller's tenant's orders by order number, order ID or recipe ID.",
                "security": _SECURED,
                "description": f"At most {ORDERS_PAGE_SIZE} orders per page, by order ID; `next` in the answer, "
                "passed back as `after`, gives the following page. " + _HELD_NOTE,
                "parameters": [
                    *lookup_params,
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "description": "The `next` of the previous page.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_TEXT},
                    },
                ],
                "responses": _responses(
                    {"200": {"description": "Matching orders.", "content": _json_content("OrdersPage")}},
                    "400",
                    "401",
                    "403",
                    "429",
                    "502",
                    "503",
                ),
            }
        },
        "/api/v2/orders/recent": {
            "get": {
                "operationId": "recentOrders",
                "summary": "The caller's tenant's orders, newest first (by their last event), a page at a time.",
                "description": "Needs the order-tracking permission; the tenant is the API key's. `next` in the "
                "answer, passed back as `after`, gives the following page. " + _HELD_NOTE,
                "security": _SECURED,
                "parameters": _page_params("orders"),
                "responses": _responses(
                    {"200": {"description": "A page of orders.", "content": _json_content("OrdersPage")}},
                    "400",
                    "401",
                    "403",
                    "429",
                    "502",
                    "503",
                ),
            }
        },
        "/api/v2/deliveries/failed": {
            "get": {
                "operationId": "failedDeliveries",
                "summary": "The caller's tenant's final delivery failures (dead letters), newest first.",
                "description": "Needs the order-tracking permission; the tenant is the API key's. Optionally of one "
                "integration and within a time window (by the delivery's last change). `next` in the answer, "
                "passed back as `after`, gives the following page.",
                "security": _SECURED,
                "parameters": [
                    {
                        "name": "integrationId",
                        "in": "query",
                        "required": False,
                        "description": "Only this integration: one of the caller's tenant's (400 otherwise).",
                        "schema": {"type": "string", "pattern": INTEGRATION_ID_PATTERN},
                    },
                    _instant_param("since", "Changed at or after this instant."),
                    _instant_param("until", "Changed at or before this instant; not before `since`."),
                    *_page_params("deliveries"),
                ],
                "responses": _responses(
                    {
                        "200": {
                            "description": "A page of failed deliveries.",
                            "content": _json_content("DeliveriesPage"),
                        }
                    },
                    "400",
                    "401",
                    "403",
                    "429",
                    "502",
                    "503",
                ),
            }
        },
        "/api/v2/integrations": {
            "get": {
                "operationId": "listIntegrations",
                "summary": "The caller's tenant's integrations with their delivery counts over a window.",
                "description": "Needs the order-tracking permission; the tenant is the API key's. Each configured "
                "integration's ID, type, description, feeds and whether it is enabled (never its hosts, user "
                "names, addresses, notification lists or secrets), with its deliveries by status whose last change "
                "is within the last `hours` (zeros when it has none), its last success and final failure, and its "
                "delivery `state` (`paused` after a pause, with `stateChangedAt` and `stateReason`; `active` "
                "otherwise) and `stateCause`: `operator` for a pause or resume by an operator, `unhealthy` when the "
                "destination-health rules paused it after consecutive failed attempts (its deliveries are held; an "
                "operator may resume it), `recovered` when a probe delivery succeeded and resumed it; "
                "`stateChangedBy` names the API key's name or `destination-health`, never a key.",
                "security": _SECURED,
                "parameters": [
                    {
                        "name": "hours",
                        "in": "query",
                        "required": False,
                        "description": "The window of the counts, in hours (ASCII digits).",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_STATS_HOURS,
                            "default": DEFAULT_STATS_HOURS,
                        },
                    }
                ],
                "responses": _responses(
                    {
                        "200": {
                            "description": "The tenant's integrations, in configuration order.",
                            "content": _json_content("IntegrationsOverview"),
                        }
                    },
                    "400",
                    "401",
                    "403",
                    "429",
                    "502",
                    "503",
                ),
            }
        },
        "/api/v2/deliveries/replay": {
            "post": {
                "operationId": "replayFailedDeliveries",
                "summary": "Re-trigger one batch of the tenant's final delivery failures in a time window.",
                "description": "Needs the integrations:trigger (or admin) permission; the tenant is the API key's. "
                "Selects the deliveries that failed for good (each has a dead letter) whose last change is within "
                "`since`..`until` (default now), optionally of one integration, newest first, leaving out those a "
                "replay already re-sent: replaying twice sends once per delivery (each failure's replay trigger ID "
                "is derived from its delivery ID). `dryRun` only counts them (200). Otherwise up to `limit` are "
                "re-triggered, each to its own integration (202); `next`, passed back as `after`, gives the following "
                "batch. Each batch costs its size in the tenant's fan-out budget (429 with Retry-After when spent, "
                "nothing sent): pace batches so a recovering destination is not flooded (`relay replay --rate`).",
                "security": _SECURED,
                "requestBody": {"required": True, "content": _json_content("ReplayRequest")},
                "responses": _responses(
                    {
                        "200": {"description": "Dry run: the count.", "content": _json_content("ReplayAccepted")},
                        "202": {
                            "description": "This batch is durably re-triggered.",
                            "content": _json_content("ReplayAccepted"),
                        },
                    },
                    "400",
                    "401",
                    "403",
                    "429",
                    "502",
                    "503",
                ),
            }
        },
        "/api/v2/integrations/trigger": {
            "post": {
                "operationId": "triggerIntegrations",
                "summary": "Re-run bundle and delivery for an order, or for a recipe and every order using it.",
                "description": "Needs the integrations:trigger (or admin) permission. Exactly one of recipeId, "
                "orderId or orderNumber; a recipeId must be one of the caller's tenant's recipes (400 naming "
                "/recipeId otherwise). One order-feed trigger per matching order item, over every page of matching "
                "orders; for a recipeId also one raw-feed trigger when an integration takes that feed. More than "
                f"{max_trigger_fanout} triggers: 413, nothing sent. Each trigger costs one token of the tenant's "
                "fan-out budget (429 with Retry-After when spent). Every trigger gets a new ID, so its deliveries "
                "appear as new attempts in the order lookup, unless the request carries an Idempotency-Key: the "
                "same key gives the same triggers (a resent request delivers nothing twice).",
                "security": _SECURED,
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "1-128 visible ASCII characters; scoped to the caller's tenant.",
                        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,128}$"},
                    }
                ],
                "requestBody": {"required": True, "content": _json_content("TriggerRequest")},
                "responses": _responses(
                    {
                        "202": {
                            "description": "Every trigger is durably published.",
                            "content": _json_content("TriggersAccepted"),
                        }
                    },
                    "400",
                    "401",
                    "403",
                    "404",
                    "413",
                    "429",
                    "502",
                    "503",
                ),
            }
        },
        "/api/v2/integrations/shopify/{tenant}/webhooks": _shopify_webhook(),
        "/api/v2/integrations/{integrationId}/pause": _state_change("paused"),
        "/api/v2/integrations/{integrationId}/resume": _state_change("active"),
        "/api/v2/admin/audit": {
            "get": {
                "operationId": "auditDeliveries",
                "summary": "Deliveries of the caller's tenant that have not ended within a deadline, and why.",
                "description": "Needs the admin permission; the tenant is the API key's. Lists deliveries that are not "
                "final (`pending`: triggered, no outcome yet; `retrying`) and whose last change is older than "
                "`olderThan`, newest change first, at most `limit`; `truncated` says more matched. Empty means "
                "nothing is stuck (`relay audit` exits 0).",
                "security": _SECURED,
                "parameters": [
                    {
                        "name": "olderThan",
                        "in": "query",
                        "required": False,
                        "description": "The deadline: whole seconds (900) or a duration such as 30s, 15m, 2h, 1d, "
                        "1h30m (units largest first); at most 3650d.",
                        "schema": {
                            "type": "string",
                            "pattern": DURATION_PATTERN,
                            "maxLength": 32,
                            "default": DEFAULT_OLDER_THAN,
                        },
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "At most this many deliveries.",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_AUDIT_LIMIT,
                            "default": DEFAULT_AUDIT_LIMIT,
                        },
                    },
                ],
                "responses": _responses(
                    {
                        "200": {
                            "description": "The deliveries that have not ended in time (empty: none).",
                            "content": _json_content("AuditReport"),
                        }
                    },
                    "400",
                    "401",
                    "403",
                    "429",
                    "502",
                    "503",
                ),
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "The process is alive.",
                "responses": {"200": {"description": "Alive.", "content": _json_content("Health")}},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Broker, object store and association store all answer.",
                "responses": {
                    "200": {"description": "Ready.", "content": _json_content("Readiness")},
                    "503": {
                        "description": "Something is down (named in checks).",
                        "content": _json_content("Readiness"),
                    },
                },
            }
        },
        "/api/v2/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    responses = {
        name: {
            "description": description,
            "content": _json_content("ErrorBody"),
            **({"headers": _RETRY_AFTER} if status in {"429", "503"} else {}),
        }
        for status, (name, description) in _ERRORS.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Recipe Relay ingest API",
            "version": "2.0.0",
            "description": "Orders, order-to-recipe associations, recipes, lookups and download links.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "apiKeyQuery": {"type": "apiKey", "in": "query", "name": "apikey"},
                "bearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
    }
