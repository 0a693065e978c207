"""The ingest API's rules, pure: the PII allow-list, validation with JSON pointers, stable IDs and events, recipes
and who may read them, lookup and audit queries, manual triggers.

No I/O here: the use cases (``service.py``) call these; a refusal is an ``IngestError`` (its class says what kind,
``middleware.py`` which HTTP answer). Request bodies arrive as strict JSON (``jsonbody.py``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import secrets
import string
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from relay_contracts.internal_api import (
    DEFAULT_AUDIT_LIMIT,
    DEFAULT_PAGE_LIMIT,
    DEFAULT_STATS_WINDOW_S,
    MAX_AUDIT_LIMIT,
    MAX_AUDIT_OLDER_THAN_S,
    MAX_CURSOR_TEXT,
    MAX_PAGE_LIMIT,
    MAX_QUERY_TEXT,
    MAX_STATS_WINDOW_S,
    ORDER_LOOKUP_FIELDS,
    IntegrationStats,
    ListedDelivery,
    OrderLookupField,
    OrdersPage,
)
from relay_contracts.messages import (
    ID_TEXT,
    SHORT_TEXT,
    Feed,
    IntegrationState,
    IntegrationStateChanged,
    IntegrationsTriggered,
    OrderEventOccurred,
    OrderItem,
    OrderLine,
    RecipeSaved,
    recipe_object_key,
    stable_id,
)
from relay_contracts.oms_api import (
    ASSOCIATION_FIELDS,
    LIFECYCLE_FIELDS,
    LIFECYCLE_ITEM_FIELDS,
    LifecycleItem,
    OrderAssociation,
    OrderLifecycleEvent,
    Rfc3339,
)
from relay_contracts.recipe import RECIPE_LIMITS, RecipeLimits, recipe_bound_problems, validate_recipe
from relay_contracts.types import UtcInstant, check_id_text
from relay_ingest_api.schemas import (
    DeliveryCounts,
    IntegrationOverview,
    IntegrationsOverview,
    IntegrationStateAccepted,
    IntegrationStateRequest,
    Problem,
    ReplayedDelivery,
    ReplayRequest,
    TriggerRequest,
    TriggerSummary,
)
from relay_platform.tenants import Tenant, integration_type

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
RECIPE_ID_RANDOM_LENGTH = 16
RECIPE_ID_SUFFIX = r"[A-Za-z0-9_-]{1,100}"

RecipeAccess = Literal["allow", "unauthenticated", "forbidden", "hidden"]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


# --- refusals ----------------------------------------------------------------------------------------------------


MAX_BODY_PROBLEMS = 50
"""Problems listed at most in one refusal."""


class IngestError(Exception):
    """A request the API refuses; ``code`` and ``message`` are safe to return (never echo the input)."""

    def __init__(self, code: str, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.problems = problems


class InvalidInputError(IngestError):
    """The request breaks a rule: ``problems`` name each bad field by JSON pointer."""


class TooLargeError(IngestError):
    """Too many items or bytes."""


class UnauthorizedError(IngestError):
    """No API key, or an unknown one."""


class ForbiddenError(IngestError):
    """The API key lacks the permission."""


class NotFoundError(IngestError):
    """No such resource (also what another tenant's key-protected recipe looks like)."""


class NothingToTriggerError(NotFoundError):
    """Orders match, but no enabled integration takes their feed."""


class BadUpstreamDataError(IngestError):
    """The association store's answer cannot make a valid trigger (like an unusable answer)."""


class CorruptRecipeError(IngestError):
    """A stored recipe that is not a JSON object: it was validated when saved, so this is our fault."""


# --- strict JSON -------------------------------------------------------------------------------------------------


def escape_pointer_part(part: object) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer(*parts: object) -> str:
    return "".join("/" + escape_pointer_part(p) for p in parts)


# --- order batches: the PII allow-list, validation, events ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scrubbed(Generic[T]):
    """Validated records plus how many fields the allow-list discarded."""

    records: list[T]
    dropped_fields: int


def scrub(record: Mapping[str, Any], allowed: frozenset[str]) -> tuple[dict[str, Any], int]:
    """Keep only allow-listed keys; return the kept mapping and how many keys were dropped."""
    if record.keys() <= allowed:
        # The usual record has nothing to drop: a C-level copy instead of a per-key filter.
        return dict(record), 0
    kept = {key: value for key, value in record.items() if key in allowed}
    return kept, len(record) - len(kept)


def _scrub_association(record: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    return scrub(record, ASSOCIATION_FIELDS)


def _scrub_lifecycle(record: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    kept, dropped = scrub(record, LIFECYCLE_FIELDS)
    items = kept.get("items")
    if isinstance(items, list):
        clean_items: list[Any] = []
        for item in items:
            if isinstance(item, dict):
                clean, item_dropped = scrub(item, LIFECYCLE_ITEM_FIELDS)
                dropped += item_dropped
                clean_items.append(clean)
            else:
                clean_items.append(item)
        kept["items"] = clean_items
    return kept, dropped


def _problems(index: int, error: ValidationError) -> list[Problem]:
    # The message only: pydantic's ``input`` would echo what may be personal data.
    return [Problem(pointer=pointer(index, *e["loc"]), message=e["msg"]) for e in error.errors(include_url=False)]


@functools.cache
def _list_adapter(model: type[M]) -> TypeAdapter[list[M]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _parse_batch(
    document: object,
    *,
    max_items: int,
    model: type[M],
    scrubber: Callable[[Mapping[str, Any]], tuple[dict[str, Any], int]],
) -> Scrubbed[M]:
    if not isinstance(document, list):
        raise InvalidInputError(
            "invalid_body", "the body must be a JSON array", [Problem(pointer="", message="must be an array")]
        )
    if len(document) > max_items:
        raise TooLargeError("too_many_items", f"at most {max_items} items per request; got {len(document)}")
    if all(isinstance(raw, dict) for raw in document):
        cleaned = [scrubber(raw) for raw in document]
        try:
            # One call validates the whole batch (a per-item call costs as much as the validation itself).
            records = _list_adapter(model).validate_python([clean for clean, _ in cleaned])
        except ValidationError:
            pass  # the item-by-item pass below names every problem as it always has
        else:
            return Scrubbed(records, sum(dropped for _, dropped in cleaned))
    records = []
    problems: list[Problem] = []
    dropped = 0
    for index, raw in enumerate(document):
        if not isinstance(raw, dict):
            problems.append(Problem(pointer=pointer(index), message="must be an object"))
            continue
        clean, dropped_here = scrubber(raw)
        dropped += dropped_here
        try:
            records.append(model.model_validate(clean))
        except ValidationError as error:
            problems.extend(_problems(index, error))
    if problems:
        raise InvalidInputError("invalid_fields", f"{len(problems)} invalid field(s) in the batch", problems)
    return Scrubbed(records, dropped)


def parse_associations(document: object, *, max_items: int) -> Scrubbed[OrderAssociation]:
    """Seed 002 association descriptors, scrubbed to the allow-list and validated item by item."""
    return _parse_batch(document, max_items=max_items, model=OrderAssociation, scrubber=_scrub_association)


def parse_lifecycle_events(document: object, *, max_items: int) -> Scrubbed[OrderLifecycleEvent]:
    """A batch of order lifecycle events, scrubbed to the allow-list and validated event by event."""
    return _parse_batch(document, max_items=max_items, model=OrderLifecycleEvent, scrubber=_scrub_lifecycle)


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


_LINK_EVENTS = TypeAdapter(list[OrderEventOccurred])


def link_events(tenant: str, associations: list[OrderAssociation], received_at: datetime) -> list[OrderEventOccurred]:
    """One ``linked`` event per association; the ID hashes the business keys so a resent batch dedupes."""
    # Plain values validated in one call for the batch, not two constructor calls per event: per-event model
    # building was the largest cost of a 100-item batch.
    fields = []
    for a in associations:
        order_id = a.order_id or a.order_number
        fields.append(
            {
                "event_id": stable_id(
                    "linked", tenant, order_id, a.order_number, a.item_id, a.recipe_id, str(a.item_quantity)
                ),
                "tenant": tenant,
                "type": "linked",
                "order_id": order_id,
                "order_number": a.order_number,
                "items": ({"recipe_id": a.recipe_id, "item_id": a.item_id, "item_quantity": a.item_quantity},),
                "occurred_at": received_at,
            }
        )
    return _LINK_EVENTS.validate_python(fields)


def lifecycle_event_id(tenant: str, event: OrderLifecycleEvent) -> str:
    """The client's ``eventId`` scoped to the tenant (one tenant cannot collide with another's), else the
    business keys plus ``occurredAt``."""
    if event.event_id is not None:
        return stable_id("client", tenant, event.event_id)
    return stable_id(event.type, tenant, event.order_id, event.order_number, _utc_text(event.occurred_at))


def lifecycle_events(tenant: str, events: list[OrderLifecycleEvent]) -> list[OrderEventOccurred]:
    """One ``OrderEventOccurred`` per lifecycle event, keeping the OMS's ``occurredAt``."""
    return [
        OrderEventOccurred(
            event_id=lifecycle_event_id(tenant, e),
            tenant=tenant,
            type=e.type,
            order_id=e.order_id,
            order_number=e.order_number,
            items=None if e.items is None else tuple(_order_item(i) for i in e.items),
            occurred_at=e.occurred_at,
        )
        for e in events
    ]


def _order_item(item: LifecycleItem) -> OrderItem:
    return OrderItem(recipe_id=item.recipe_id, item_id=item.item_id, item_quantity=item.item_quantity)


# --- recipes -----------------------------------------------------------------------------------------------------


def new_recipe_id(prefix: str) -> str:
    """``<prefix>-<16 base62 characters>`` from a CSPRNG: the ID alone may grant read access."""
    return f"{prefix}-" + "".join(secrets.choice(BASE62) for _ in range(RECIPE_ID_RANDOM_LENGTH))


def is_recipe_id(recipe_id: str) -> bool:
    """A syntactically possible recipe ID (prefix, dash, safe characters): anything else is never stored."""
    return re.fullmatch(r"[A-Za-z0-9]{1,16}-" + RECIPE_ID_SUFFIX, recipe_id) is not None


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class PreparedRecipe:
    recipe_id: str
    body: bytes
    temporary: bool
    name: str | None
    style_code: str | None
    created: datetime


_created = TypeAdapter(UtcInstant)


def _check_recipe_bounds(document: dict[str, Any], limits: RecipeLimits) -> None:
    """413 when an array is over its count limit, else 400 for a string too long, nesting too deep or a value no
    consumer can store; each problem names its JSON pointer and the ``recipe_max_*`` setting it breaks."""
    found = recipe_bound_problems(document, limits, max_problems=MAX_BODY_PROBLEMS)
    if not found:
        return
    problems = [
        Problem(pointer=p.pointer, message=p.message if p.limit is None else f"{p.message} (recipe_{p.limit})")
        for p in found
    ]
    too_large = [problem for problem, p in zip(problems, found, strict=True) if p.too_large]
    shown = too_large or problems
    summary = "; ".join(f"{p.pointer or '/'}: {p.message}" for p in shown[:3]) + ("; ..." if len(shown) > 3 else "")
    if too_large:
        raise TooLargeError("recipe_too_large", f"the recipe is over a size limit: {summary}", too_large)
    raise InvalidInputError("invalid_recipe", f"the recipe has {len(problems)} unusable value(s): {summary}", problems)


def prepare_recipe(
    document: object, *, tenant_prefix: str, now: datetime, limits: RecipeLimits = RECIPE_LIMITS
) -> PreparedRecipe:
    """Assign ``id``/``created`` when absent, check the ID belongs to the tenant, check ``limits`` (413 for a
    count, 400 otherwise), validate against seed 001, and insist ``created`` converts to UTC."""
    if not isinstance(document, dict):
        raise InvalidInputError(
            "invalid_recipe", "a recipe must be a JSON object", [Problem(pointer="", message="must be an object")]
        )
    # Before the schema: bounded input keeps the schema check, the stored JSON and every consumer bounded too.
    _check_recipe_bounds(document, limits)
    recipe = dict(document)
    problems: list[Problem] = []
    recipe.setdefault("id", new_recipe_id(tenant_prefix))
    recipe.setdefault("created", rfc3339(now))
    recipe_id = recipe["id"]
    if isinstance(recipe_id, str) and not re.fullmatch(re.escape(tenant_prefix) + "-" + RECIPE_ID_SUFFIX, recipe_id):
        problems.append(
            Problem(
                pointer="/id",
                message=f"must be '{tenant_prefix}-' followed by 1-100 letters, digits, '-' or '_'",
            )
        )
    problems.extend(Problem(pointer=p.pointer, message=p.message) for p in validate_recipe(recipe))
    if problems:
        raise InvalidInputError("invalid_recipe", f"the recipe breaks the schema in {len(problems)} place(s)", problems)
    try:
        created = _created.validate_python(recipe["created"])
    except ValidationError as error:
        message = error.errors(include_url=False)[0]["msg"]
        raise InvalidInputError(
            "invalid_recipe", "created is not a usable timestamp", [Problem(pointer="/created", message=message)]
        ) from error
    name, style_code = recipe.get("name"), recipe.get("styleCode")
    return PreparedRecipe(
        recipe_id=str(recipe_id),
        # Checked above: no NaN, no lone surrogate, bounded depth, so neither step can raise.
        body=json.dumps(recipe, ensure_ascii=False, allow_nan=False).encode(),
        temporary=recipe.get("temporaryRecipe") is True,
        name=name[: SHORT_TEXT * 5] if isinstance(name, str) else None,
        style_code=style_code[:SHORT_TEXT] if isinstance(style_code, str) else None,
        created=created,
    )


def recipe_saved(tenant: str, recipe: PreparedRecipe, occurred_at: datetime) -> RecipeSaved:
    """The claim-check event: the ID changes with the stored bytes, so a resave of the same JSON dedupes."""
    return RecipeSaved(
        event_id=stable_id("recipe-saved", tenant, recipe.recipe_id, hashlib.sha256(recipe.body).hexdigest()),
        tenant=tenant,
        recipe_id=recipe.recipe_id,
        recipe_key=recipe_object_key(tenant, recipe.recipe_id),
        temporary=recipe.temporary,
        name=recipe.name,
        style_code=recipe.style_code,
        created=recipe.created,
        occurred_at=occurred_at,
    )


def recipe_access(
    *, read_mode: Literal["public", "key"], owner: str, requester: str | None, can_read: bool
) -> RecipeAccess:
    """Seed 001: public-by-ID or key-only per tenant. Another tenant's key sees "hidden" (404, like unknown)."""
    if read_mode == "public":
        return "allow"
    if requester is None:
        return "unauthenticated"
    if requester != owner:
        return "hidden"
    return "allow" if can_read else "forbidden"


def check_recipe_access(access: RecipeAccess) -> None:
    """Refuse unless ``access`` is "allow": 401 without a key, 404 for another tenant's key, 403 without
    ``recipes:read``."""
    if access == "unauthenticated":
        raise UnauthorizedError("unauthorized", "this recipe needs an API key with recipes:read")
    if access == "hidden":
        raise NotFoundError("not_found", "no such recipe")
    if access == "forbidden":
        raise ForbiddenError("forbidden", "this API key lacks the recipes:read permission")


def recipe_url(public_base_url: str, recipe_id: str) -> str:
    """Where the recipe's JSON is served."""
    return f"{public_base_url.rstrip('/')}/recipe/{recipe_id}.json"


# --- lookups and audits ----------------------------------------------------------------------------------------


def lookup_query(params: Mapping[str, str]) -> tuple[OrderLookupField, str]:
    """Exactly one of ``orderNumber``, ``orderId``, ``recipeId``, given once, and usable as an ID.

    A bad percent-encoding (``%ED%A0%80``, ``%FF``) arrives decoded as U+FFFD, refused like control characters.
    """
    # A multidict's items() repeats a parameter given twice: ``?orderId=a&orderId=b`` is ambiguous, so refused.
    given = [(name, value) for name, value in params.items() if name in ORDER_LOOKUP_FIELDS]
    if len(given) != 1:
        raise InvalidInputError("invalid_query", "give exactly one of orderNumber, orderId or recipeId, once")
    name, value = given[0]
    problem = None
    if not 1 <= len(value) <= ID_TEXT:
        problem = f"must be 1-{ID_TEXT} characters"
    else:
        try:
            check_id_text(value)
        except ValueError:
            problem = "must be percent-encoded UTF-8 without control characters, and not only whitespace"
    if problem is not None:
        raise InvalidInputError("invalid_query", f"{name} {problem}", [Problem(pointer=pointer(name), message=problem)])
    field: OrderLookupField = "orderNumber" if name == "orderNumber" else "orderId" if name == "orderId" else "recipeId"
    return field, value


def page_after(params: Mapping[str, str]) -> str | None:
    """``after``: the ``next`` of the previous page of a lookup (an order ID), or absent for the first page."""
    after = params.get("after")
    if after is None:
        return None
    if not 1 <= len(after) <= MAX_QUERY_TEXT or not after.isprintable():
        raise InvalidInputError(
            "invalid_query",
            "after must be the 'next' value of the previous page",
            [Problem(pointer=pointer("after"), message="must be 1-128 printable characters")],
        )
    return after


DEFAULT_OLDER_THAN = "15m"
"""``olderThan`` when absent: the store's ``DEFAULT_AUDIT_OLDER_THAN_S`` as the API writes durations."""
DURATION_PATTERN = r"^(?:[0-9]+|(?:[0-9]+d)?(?:[0-9]+h)?(?:[0-9]+m)?(?:[0-9]+s)?)$"
_DURATION = re.compile(r"(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?")
_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
MAX_DURATION_TEXT = 32


@dataclass(frozen=True, slots=True)
class AuditQuery:
    older_than_s: int
    limit: int


def parse_duration(text: str) -> int:
    """Whole seconds from ``900``, ``900s``, ``15m``, ``2h``, ``1d`` or ``1h30m`` (units largest first)."""
    if not text or len(text) > MAX_DURATION_TEXT or not text.isascii():
        raise ValueError("empty or too long")
    if text.isdigit():
        return int(text)
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError("not a duration")
    return sum(int(value) * _SECONDS[unit] for unit, value in match.groupdict().items() if value is not None)


def audit_query(params: Mapping[str, str]) -> AuditQuery:
    """``olderThan`` (a duration, default 15m, at most 3650d) and ``limit`` (1-1000, default 100)."""
    problems: list[Problem] = []
    older_than_s = 0
    try:
        older_than_s = parse_duration(params.get("olderThan", DEFAULT_OLDER_THAN))
    except ValueError:
        problems.append(
            Problem(
                pointer=pointer("olderThan"),
                message="must be a duration such as 900 (seconds), 30s, 15m, 2h, 1d or 1h30m",
            )
        )
    else:
        if older_than_s > MAX_AUDIT_OLDER_THAN_S:
            problems.append(Problem(pointer=pointer("olderThan"), message="must be at most 3650d"))
    limit = DEFAULT_AUDIT_LIMIT
    raw_limit = params.get("limit")
    if raw_limit is not None:
        if (
            raw_limit.isascii()
            and raw_limit.isdigit()
            and len(raw_limit) <= 4
            and 1 <= int(raw_limit) <= MAX_AUDIT_LIMIT
        ):
            limit = int(raw_limit)
        else:
            problems.append(
                Problem(pointer=pointer("limit"), message=f"must be a whole number from 1 to {MAX_AUDIT_LIMIT}")
            )
    if problems:
        raise InvalidInputError("invalid_query", f"{len(problems)} invalid query parameter(s)", problems)
    return AuditQuery(older_than_s=older_than_s, limit=limit)


# --- the console's lists ---------------------------------------------------------------------------------------


DEFAULT_STATS_HOURS = DEFAULT_STATS_WINDOW_S // 3600
MAX_STATS_HOURS = MAX_STATS_WINDOW_S // 3600
INTEGRATION_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""What the tenant config takes as an integration ID (``relay_platform.tenants``): anything else is none of them."""
MAX_INSTANT_TEXT = 40
"""Longer than any RFC 3339 date-time (``9998-12-31T23:59:59.123456789+00:00`` is 35)."""
_DIGITS = re.compile(r"[0-9]{1,6}")  # ASCII only (no fullwidth or Arabic-Indic digits), no sign, no exponent
_INTEGRATION_ID = re.compile(INTEGRATION_ID_PATTERN)
_INSTANT = TypeAdapter(Rfc3339)
_NOT_AN_INTEGRATION = "not an integration of this tenant"


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One page of a newest-first list: at most ``limit`` entries, after the cursor ``after`` (first page: None)."""

    limit: int
    after: str | None


@dataclass(frozen=True, slots=True)
class FailedDeliveriesQuery:
    page: PageQuery
    integration: str | None
    since: datetime | None
    until: datetime | None


def _once(params: Mapping[str, str], name: str, problems: list[Problem]) -> str | None:
    """The parameter's value, ``None`` when absent; given twice it is ambiguous, so a problem."""
    # A multidict's items() repeats a parameter given twice (``?limit=5&limit=50``).
    values = [value for key, value in params.items() if key == name]
    if len(values) > 1:
        problems.append(Problem(pointer=pointer(name), message="must be given at most once"))
        return None
    return values[0] if values else None


def _whole_number(params: Mapping[str, str], name: str, *, default: int, maximum: int, problems: list[Problem]) -> int:
    text = _once(params, name, problems)
    if text is None:
        return default
    if _DIGITS.fullmatch(text) and 1 <= int(text) <= maximum:
        return int(text)
    problems.append(Problem(pointer=pointer(name), message=f"must be a whole number from 1 to {maximum}"))
    return default


def _page_query(params: Mapping[str, str], problems: list[Problem]) -> PageQuery:
    """``limit`` (1-100, default 25) and ``after`` (the opaque ``next`` of the previous page, 1-512 printable
    characters; a bad percent-encoding arrives as U+FFFD and is refused too)."""
    limit = _whole_number(params, "limit", default=DEFAULT_PAGE_LIMIT, maximum=MAX_PAGE_LIMIT, problems=problems)
    after = _once(params, "after", problems)
    if after is not None and not (1 <= len(after) <= MAX_CURSOR_TEXT and after.isprintable() and "\ufffd" not in after):
        problems.append(
            Problem(
                pointer=pointer("after"),
                message=f"must be the 'next' of the previous page (1-{MAX_CURSOR_TEXT} printable characters)",
            )
        )
        after = None
    return PageQuery(limit=limit, after=after)


def _refuse(problems: list[Problem]) -> None:
    if problems:
        raise InvalidInputError("invalid_query", f"{len(problems)} invalid query parameter(s)", problems)


def recent_orders_query(params: Mapping[str, str]) -> PageQuery:
    """``GET /api/v2/orders/recent``: ``limit`` and ``after``."""
    problems: list[Problem] = []
    page = _page_query(params, problems)
    _refuse(problems)
    return page


def _instant(params: Mapping[str, str], name: str, problems: list[Problem]) -> datetime | None:
    text = _once(params, name, problems)
    if text is None:
        return None
    moment: datetime | None = None
    if len(text) <= MAX_INSTANT_TEXT:
        with contextlib.suppress(ValidationError):
            moment = _INSTANT.validate_python(text)
    if moment is None:
        # The message only, never the input; naive times are refused, not taken as UTC or as local time.
        problems.append(
            Problem(
                pointer=pointer(name),
                message="must be an RFC 3339 date-time with a time zone, e.g. 2026-12-01T10:00:00Z",
            )
        )
        return None
    return moment


def failed_deliveries_query(params: Mapping[str, str]) -> FailedDeliveriesQuery:
    """``GET /api/v2/deliveries/failed``: ``integrationId`` (syntax only here: ``check_own_integration``),
    ``since`` and ``until`` (RFC 3339 with an offset, since not after until), ``limit`` and ``after``."""
    problems: list[Problem] = []
    integration = _once(params, "integrationId", problems)
    if integration is not None and not _INTEGRATION_ID.fullmatch(integration):
        # Said the same way as an ID no integration of the tenant has: nothing about other tenants leaks.
        problems.append(Problem(pointer=pointer("integrationId"), message=_NOT_AN_INTEGRATION))
        integration = None
    since = _instant(params, "since", problems)
    until = _instant(params, "until", problems)
    if since is not None and until is not None and since > until:
        problems.append(Problem(pointer=pointer("since"), message="must not be later than until"))
    page = _page_query(params, problems)
    _refuse(problems)
    return FailedDeliveriesQuery(page=page, integration=integration, since=since, until=until)


def check_own_integration(tenant: Tenant, integration_id: str | None) -> None:
    """An ``integrationId`` filter must name one of the caller's tenant's integrations (enabled or not). Another
    tenant's integration is refused exactly like one nobody has."""
    if integration_id is not None and tenant.integration(integration_id) is None:
        raise InvalidInputError(
            "invalid_query",
            "integrationId is not an integration of this tenant",
            [Problem(pointer=pointer("integrationId"), message=_NOT_AN_INTEGRATION)],
        )


def cursor_refused() -> InvalidInputError:
    """The store did not take the caller's ``after``: a cursor it did not issue (or one from another list)."""
    return InvalidInputError(
        "invalid_query",
        "after is not a cursor of this list",
        [Problem(pointer=pointer("after"), message="must be the 'next' of the previous page of this list")],
    )


def stats_hours(params: Mapping[str, str]) -> int:
    """``GET /api/v2/integrations``: ``hours``, the window of the counts (1-2160, default 24)."""
    problems: list[Problem] = []
    hours = _whole_number(params, "hours", default=DEFAULT_STATS_HOURS, maximum=MAX_STATS_HOURS, problems=problems)
    _refuse(problems)
    return hours


def integrations_overview(tenant: Tenant, stats: IntegrationStats, *, hours: int) -> IntegrationsOverview:
    """Each of the tenant's configured integrations (what an operator may see of it: no host, user name, address,
    notification list or secret) with the store's counts over the window; one without counts has zeros. Counts for
    an integration no longer configured are left out."""
    if stats.window_s != hours * 3600:
        raise BadUpstreamDataError("upstream_error", "the association store counted over another window")
    counts = {}
    for entry in stats.integrations:
        if entry.integration in counts:
            raise BadUpstreamDataError("upstream_error", "the association store counted an integration twice")
        counts[entry.integration] = entry
    states = {}
    for state in stats.states:
        if state.integration in states:
            raise BadUpstreamDataError("upstream_error", "the association store gave an integration two states")
        states[state.integration] = state
    overview = []
    for integration in tenant.integrations:
        found = counts.get(integration.id)
        changed = states.get(integration.id)
        overview.append(
            IntegrationOverview(
                id=integration.id,
                type=integration_type(integration),
                description=integration.description,
                feeds=list(integration.feeds),
                enabled=integration.enabled,
                counts=DeliveryCounts(
                    succeeded=found.succeeded if found else 0,
                    failed=found.failed if found else 0,
                    retrying=found.retrying if found else 0,
                    pending=found.pending if found else 0,
                ),
                window_hours=hours,
                last_success_at=found.last_success_at if found else None,
                last_failure_at=found.last_failure_at if found else None,
                # No record: never paused, so active.
                state=changed.state if changed else "active",
                state_changed_at=changed.changed_at if changed else None,
                state_reason=changed.reason if changed else None,
                state_cause=changed.cause if changed else "operator",
                state_changed_by=changed.changed_by if changed else None,
            )
        )
    return IntegrationsOverview(integrations=overview)


# --- pause and resume --------------------------------------------------------------------------------------------


def own_integration(tenant: Tenant, integration_id: str) -> str:
    """The path's ``integrationId`` when it is one of the caller's tenant's integrations (enabled or not); 404
    otherwise, the same for another tenant's ID as for one nobody has, so IDs of other tenants cannot be probed."""
    if not _INTEGRATION_ID.fullmatch(integration_id) or tenant.integration(integration_id) is None:
        raise NotFoundError("not_found", "no such integration")
    return integration_id


def parse_state_request(document: object | None) -> IntegrationStateRequest:
    """A pause or resume body (``IntegrationStateRequest``): none at all, or ``{"reason": ...}`` and nothing else."""
    if document is None:
        return IntegrationStateRequest()
    if not isinstance(document, dict):
        raise InvalidInputError(
            "invalid_body", "the body must be a JSON object", [Problem(pointer="", message="must be an object")]
        )
    try:
        return IntegrationStateRequest.model_validate(document)
    except ValidationError as error:
        problems = [Problem(pointer=pointer(*e["loc"]), message=e["msg"]) for e in error.errors(include_url=False)]
        raise InvalidInputError("invalid_fields", f"{len(problems)} invalid field(s)", problems) from error


def state_change(
    tenant_id: str,
    integration_id: str,
    state: IntegrationState,
    request: IntegrationStateRequest,
    *,
    changed_by: str,
    now: datetime,
) -> IntegrationStateChanged:
    """The ``integrations.control.v1`` event of an operator's pause or resume: a new event ID every time (pausing a
    paused integration is a change of its own, newer, and harmless)."""
    return IntegrationStateChanged(
        event_id=str(uuid.uuid4()),
        tenant=tenant_id,
        integration_id=integration_id,
        state=state,
        reason=request.reason,
        changed_by=changed_by[:SHORT_TEXT],
        changed_at=now,
    )


def state_accepted(change: IntegrationStateChanged) -> IntegrationStateAccepted:
    return IntegrationStateAccepted(
        integration_id=change.integration_id, state=change.state, changed_at=rfc3339(change.changed_at)
    )


def parse_stored_recipe(body: bytes) -> dict[str, Any]:
    """The stored recipe JSON as a dict (for rendering its pick ticket)."""
    try:
        recipe: object = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CorruptRecipeError("corrupt_recipe", "the stored recipe is not readable JSON") from error
    if not isinstance(recipe, dict):
        raise CorruptRecipeError("corrupt_recipe", "the stored recipe is not a JSON object")
    return recipe


def is_temporary_recipe(body: bytes) -> bool:
    return parse_stored_recipe(body).get("temporaryRecipe") is True


# --- manual triggers ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TriggerTarget:
    """What to re-run: one lookup criterion, and the integrations named by the operator (``None``: the default)."""

    field: OrderLookupField
    value: str
    integration_ids: tuple[str, ...] | None


def parse_trigger(document: object) -> TriggerTarget:
    """The trigger body: exactly one of ``recipeId``, ``orderId``, ``orderNumber``; optional ``integrationIds``."""
    if not isinstance(document, dict):
        raise InvalidInputError(
            "invalid_body", "the body must be a JSON object", [Problem(pointer="", message="must be an object")]
        )
    try:
        request = TriggerRequest.model_validate(document)
    except ValidationError as error:
        problems = [Problem(pointer=pointer(*e["loc"]), message=e["msg"]) for e in error.errors(include_url=False)]
        raise InvalidInputError("invalid_fields", f"{len(problems)} invalid field(s)", problems) from error
    values: dict[OrderLookupField, str | None] = {
        "recipeId": request.recipe_id,
        "orderId": request.order_id,
        "orderNumber": request.order_number,
    }
    given = [(name, value) for name, value in values.items() if value is not None]
    exactly_one = "give exactly one of recipeId, orderId or orderNumber"
    if not given:
        raise InvalidInputError("invalid_fields", exactly_one, [Problem(pointer="", message=exactly_one)])
    if len(given) > 1:
        raise InvalidInputError(
            "invalid_fields",
            exactly_one,
            [Problem(pointer=pointer(name), message=exactly_one) for name, _ in given[1:]],
        )
    field, value = given[0]
    ids = None if request.integration_ids is None else tuple(dict.fromkeys(request.integration_ids))
    return TriggerTarget(field=field, value=value, integration_ids=ids)


def check_integration_ids(tenant: Tenant, target: TriggerTarget) -> None:
    """Each named integration must be an enabled integration of the caller's tenant taking a feed this trigger
    can fire (an order feed always; the raw recipe feed only for a ``recipeId``)."""
    if target.integration_ids is None:
        return
    usable: set[Feed] = {"order", "recipe"} if target.field == "recipeId" else {"order"}
    problems = []
    for index, integration_id in enumerate(target.integration_ids):
        integration = tenant.integration(integration_id)
        if integration is None or not integration.enabled:
            problems.append(
                Problem(pointer=pointer("integrationIds", index), message="not an enabled integration of this tenant")
            )
        elif not usable & set(integration.feeds):
            problems.append(
                Problem(
                    pointer=pointer("integrationIds", index),
                    message="takes only the raw recipe feed; trigger it by recipeId",
                )
            )
    if problems:
        raise InvalidInputError("invalid_integrations", f"{len(problems)} unusable integration ID(s)", problems)


DEFAULT_MAX_TRIGGER_FANOUT = 5000
"""Triggers one manual re-trigger may publish (``INGEST_API_MAX_TRIGGER_FANOUT``); 413 past it."""

TriggerIds = Callable[[str, str | None, str | None], str]
"""A trigger's ID from ``(recipe_id, order_id, item_id)``."""


def trigger_ids(tenant_id: str, idempotency_key: str | None) -> TriggerIds:
    """Fresh IDs per manual trigger (new delivery IDs downstream, so the lookup shows the new attempts), unless
    the operator sent an ``Idempotency-Key``: a resent request then yields the very same triggers, deliveries
    and object keys, so it sends nothing twice."""
    if idempotency_key is None:
        return lambda _recipe, _order, _item: str(uuid.uuid4())
    return lambda recipe, order, item: stable_id(
        "manual", tenant_id, idempotency_key, recipe, order or "\x00", item or "\x00"
    )


IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")


def parse_idempotency_key(header: str | None) -> str | None:
    """The ``Idempotency-Key`` header: 1-128 visible ASCII characters, or absent."""
    if header is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(header):
        raise InvalidInputError(
            "invalid_header",
            "Idempotency-Key must be 1-128 visible ASCII characters",
            [Problem(pointer="/Idempotency-Key", message="must be 1-128 visible ASCII characters")],
        )
    return header


def foreign_recipes(owns: Callable[[str], bool], recipe_ids: Sequence[tuple[str, str]], prefix: str) -> None:
    """Refuse recipe IDs that are not the caller's tenant's: ``recipe_ids`` are ``(JSON pointer, recipe ID)``.

    A recipe is its tenant's alone (its ID starts with the tenant's ``recipe-prefix``): linking, triggering or
    cancelling another tenant's recipe would send that tenant's recipe to this tenant's destinations.
    """
    message = f"not a recipe of this tenant (its recipe IDs start with '{prefix}-')"
    problems = [Problem(pointer=at, message=message) for at, recipe_id in recipe_ids if not owns(recipe_id)]
    if problems:
        raise InvalidInputError("foreign_recipe", f"{len(problems)} recipe ID(s) of another tenant", problems)


def association_recipe_ids(records: Sequence[OrderAssociation]) -> list[tuple[str, str]]:
    # pointer(index, "recipeId") spelled out: neither part has anything to escape, and this runs per item.
    return [(f"/{index}/recipeId", record.recipe_id) for index, record in enumerate(records)]


def lifecycle_recipe_ids(records: Sequence[OrderLifecycleEvent]) -> list[tuple[str, str]]:
    return [
        (pointer(index, "items", position, "recipeId"), item.recipe_id)
        for index, record in enumerate(records)
        for position, item in enumerate(record.items or ())
    ]


def manual_order_triggers(
    tenant_id: str,
    found: OrdersPage,
    integration_ids: tuple[str, ...],
    *,
    now: datetime,
    owns: Callable[[str], bool],
    only_recipe: str | None = None,
    new_id: TriggerIds | None = None,
) -> list[IntegrationsTriggered]:
    """One ``feed="order"`` trigger per order item (of ``only_recipe`` when given) using one of the tenant's own
    recipes (an item naming another tenant's recipe is never built: ``owns``)."""
    if not integration_ids:
        return []
    ids = new_id or trigger_ids(tenant_id, None)
    triggers = []
    try:
        for order in found.orders:
            for item in order.items:
                if (only_recipe is not None and item.recipe_id != only_recipe) or not owns(item.recipe_id):
                    continue
                line = OrderLine(
                    order_id=order.order_id,
                    order_number=order.order_number,
                    item_id=item.item_id,
                    item_quantity=item.item_quantity,
                    status=order.status,
                )
                triggers.append(
                    IntegrationsTriggered(
                        trigger_id=ids(item.recipe_id, order.order_id, item.item_id),
                        tenant=tenant_id,
                        recipe_id=item.recipe_id,
                        recipe_key=recipe_object_key(tenant_id, item.recipe_id),
                        feed="order",
                        reason="manual",
                        order=line,
                        integration_ids=integration_ids,
                        occurred_at=now,
                        accepted_at=now,
                    )
                )
    except ValidationError as error:
        raise BadUpstreamDataError("upstream_error", "the association store gave an unusable order") from error
    return triggers


def manual_recipe_trigger(
    tenant_id: str,
    recipe_id: str,
    integration_ids: tuple[str, ...],
    *,
    now: datetime,
    new_id: TriggerIds | None = None,
) -> IntegrationsTriggered:
    """The raw recipe feed, re-run for one stored recipe."""
    return IntegrationsTriggered(
        trigger_id=(new_id or trigger_ids(tenant_id, None))(recipe_id, None, None),
        tenant=tenant_id,
        recipe_id=recipe_id,
        recipe_key=recipe_object_key(tenant_id, recipe_id),
        feed="recipe",
        reason="manual",
        integration_ids=integration_ids,
        occurred_at=now,
        accepted_at=now,
    )


# --- bulk replay ---------------------------------------------------------------------------------------------------


def parse_replay(document: object, tenant: Tenant) -> ReplayRequest:
    """The replay body (``ReplayRequest``): ``since`` required, ``until`` not before it, ``integrationId`` one of
    the caller's tenant's integrations (refused like one nobody has otherwise)."""
    if not isinstance(document, dict):
        raise InvalidInputError(
            "invalid_body", "the body must be a JSON object", [Problem(pointer="", message="must be an object")]
        )
    try:
        request = ReplayRequest.model_validate(document)
    except ValidationError as error:
        problems = [Problem(pointer=pointer(*e["loc"]), message=e["msg"]) for e in error.errors(include_url=False)]
        raise InvalidInputError("invalid_fields", f"{len(problems)} invalid field(s)", problems) from error
    if request.until is not None and request.since > request.until:
        raise InvalidInputError(
            "invalid_fields",
            "since is later than until",
            [Problem(pointer="/since", message="must not be later than until")],
        )
    if request.integration_id is not None and tenant.integration(request.integration_id) is None:
        raise InvalidInputError(
            "invalid_fields",
            "integrationId is not an integration of this tenant",
            [Problem(pointer="/integrationId", message=_NOT_AN_INTEGRATION)],
        )
    return request


def replay_trigger_id(delivery_id: str) -> str:
    """The trigger that replays ``delivery_id``: the same for every replay of it, so a replay sent twice (a retried
    request, two operators at once) is one trigger, one set of delivery IDs, one idempotency key downstream."""
    return stable_id("replay", delivery_id)


def replay_triggers(
    tenant_id: str,
    tenant: Tenant,
    failures: Sequence[ListedDelivery],
    *,
    owns: Callable[[str], bool],
    now: datetime,
) -> tuple[list[IntegrationsTriggered], int]:
    """One trigger per failure, to its integration only, for the very order line it was made for (the order alone
    when the store does not know the line); failures whose integration is no longer configured and enabled are
    skipped (counted). The recipe must be the tenant's: the store's rows are, and this keeps it so."""
    triggers = []
    skipped = 0
    for failure in failures:
        integration = tenant.integration(failure.integration)
        if integration is None or not integration.enabled or not owns(failure.recipe_id):
            skipped += 1
            continue
        order = (
            OrderLine(
                order_id=failure.order_id,
                order_number=failure.order_number or failure.order_id,
                item_id=failure.item_id,
            )
            if failure.order_id is not None
            else None
        )
        triggers.append(
            IntegrationsTriggered(
                trigger_id=replay_trigger_id(failure.delivery_id),
                tenant=tenant_id,
                recipe_id=failure.recipe_id,
                recipe_key=recipe_object_key(tenant_id, failure.recipe_id),
                feed="order" if order is not None else "recipe",
                reason="manual",
                order=order,
                integration_ids=(failure.integration,),
                occurred_at=now,
                accepted_at=now,
                replay_of=failure.delivery_id,
            )
        )
    return triggers, skipped


def replayed_delivery(trigger: IntegrationsTriggered) -> ReplayedDelivery:
    return ReplayedDelivery(
        delivery_id=trigger.replay_of or "",
        replay_trigger_id=trigger.trigger_id,
        integration=trigger.integration_ids[0],
        order_id=trigger.order.order_id if trigger.order else None,
        order_number=trigger.order.order_number if trigger.order else None,
        recipe_id=trigger.recipe_id,
    )


MAX_ORDER_TRACE_LINKS = 32
"""At most this many original order traces are linked from one re-trigger. A re-trigger by recipe may match
thousands of orders (up to the fan-out limit); every link is kept on the request span and exported with it, the
SDK drops links past its own cap (128) silently and trace backends cap them too, and a person follows a handful.
The first 32 (by order ID) find the originals; the order lookup names the rest."""


def original_traces(found: OrdersPage, traces: dict[str, str], *, limit: int = MAX_ORDER_TRACE_LINKS) -> None:
    """Add the stored original trace of each order on ``found`` to ``traces`` (trace ID -> traceparent), one per
    trace (orders sent in one request share it), until ``limit`` traces are known."""
    for order in found.orders:
        if len(traces) >= limit:
            return
        # ``FoundOrder`` keeps only a well-formed traceparent: its trace ID is characters 3 to 35 (slicing, so
        # even an unchecked value cannot raise here; the linker skips what names no trace).
        if order.trace_parent is not None:
            traces.setdefault(order.trace_parent[3:35], order.trace_parent)


def trigger_summary(trigger: IntegrationsTriggered) -> TriggerSummary:
    order = trigger.order
    return TriggerSummary(
        trigger_id=trigger.trigger_id,
        feed=trigger.feed,
        recipe_id=trigger.recipe_id,
        order_id=order.order_id if order else None,
        order_number=order.order_number if order else None,
        item_id=order.item_id if order else None,
        integration_ids=list(trigger.integration_ids),
    )
