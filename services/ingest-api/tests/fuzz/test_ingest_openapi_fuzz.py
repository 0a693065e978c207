"""schemathesis against the ingest API's own OpenAPI document, on a real broker: valid and invalid requests
(schemathesis' positive and negative generation, its coverage phase's boundary values), plus raw JSON bodies no
serializer would write (NaN, 5000-digit integers, lone surrogates, BOMs): no 5xx, responses as documented, invalid
data refused with a 4xx, and every error a JSON body naming the problem."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from relay_ingest_api.main import create_app, start_server
from relay_ingest_api.openapi import openapi_document
from relay_ingest_api.settings import Settings
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import KafkaSettings
from relay_testing.shared_secrets import link_settings

pytestmark = pytest.mark.integration

TENANTS_FILE = Path(__file__).parent / "fuzz_tenants.yaml"
AUTH = {"Authorization": "Bearer demo-key"}
REQUESTS_SENT: list[str] = []
NEGATIVE_SENT: list[str] = []
MINIMUM_REQUESTS = 2300
MINIMUM_NEGATIVE = 900
EXAMPLES_PER_OPERATION = 130
RAW_BODIES = 300


class IngestInThread(threading.Thread):
    """The ingest API plus a stand-in association store, on their own event loop: schemathesis calls are blocking."""

    def __init__(self, bootstrap: str, objects_dir: Path) -> None:
        super().__init__(daemon=True, name="ingest-under-fuzz")
        self.bootstrap = bootstrap
        self.objects_dir = objects_dir
        self.url = ""
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:
            self.failure = error
            self.ready.set()

    async def _serve(self) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()

        async def no_orders(_: web.Request) -> web.Response:
            return web.json_response({"orders": []})

        async def ready(_: web.Request) -> web.Response:
            return web.json_response({"status": "ready"})

        async def nothing_stuck(request: web.Request) -> web.Response:
            query = request.query
            return web.json_response(
                {
                    "tenant": query["tenant"],
                    "olderThanS": int(query["olderThanS"]),
                    "cutoff": "2026-01-01T00:00:00.000Z",
                    "limit": int(query["limit"]),
                    "truncated": False,
                    "deliveries": [],
                }
            )

        async def no_recent_orders(_: web.Request) -> web.Response:
            return web.json_response({"orders": [], "next": None})

        async def no_deliveries(request: web.Request) -> web.Response:
            # Counted only when asked, as the store does (the replay asks).
            total = 0 if request.query.get("withTotal") == "true" else None
            return web.json_response({"deliveries": [], "next": None, "total": total})

        async def some_counts(request: web.Request) -> web.Response:
            counts = [{"integration": "fuzz-hook", "succeeded": 1, "lastSuccessAt": "2026-01-01T00:00:00.000Z"}]
            return web.json_response({"windowS": int(request.query["sinceS"]), "integrations": counts})

        store = web.Application()
        store.router.add_get("/internal/v1/orders", no_orders)
        store.router.add_get("/internal/v1/audit", nothing_stuck)
        store.router.add_get("/internal/v1/orders/recent", no_recent_orders)
        store.router.add_get("/internal/v1/deliveries", no_deliveries)
        store.router.add_get("/internal/v1/integrations/stats", some_counts)
        store.router.add_get("/readyz", ready)
        store_runner = web.AppRunner(store, access_log=None)
        await store_runner.setup()
        await web.TCPSite(store_runner, "127.0.0.1", 0).start()
        store_host, store_port = store_runner.addresses[0][:2]
        settings = Settings(
            host="127.0.0.1",
            port=0,
            kafka=KafkaSettings(bootstrap_servers=self.bootstrap, request_timeout_ms=3000),
            tenants_file=TENANTS_FILE,
            association_store_url=f"http://{store_host}:{store_port}",
            object_store=ObjectStoreSettings(url=f"file://{self.objects_dir}"),
            links=link_settings(public_base_url="http://x"),
        )
        runner = await start_server(create_app(settings), settings.host, settings.port)
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self.ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()
            await store_runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout=30)


@pytest.fixture(scope="module")
def ingest_url(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = IngestInThread(kafka_bootstrap, tmp_path_factory.mktemp("fuzz-objects"))
    server.start()
    assert server.ready.wait(60), "the ingest API did not start"
    if server.failure is not None:
        raise server.failure

    deadline = 60.0
    while deadline > 0 and requests.get(f"{server.url}/readyz", timeout=5).status_code != 200:
        deadline -= 0.1
        threading.Event().wait(0.1)
    try:
        yield server.url
    finally:
        server.stop()


# Built from the same code the API serves it from (schemathesis' lazy fixture loader does not work with this
# pytest version); the first test proves the served document is this one.
DEFAULTS = Settings.model_construct(links=link_settings())
DOCUMENT = openapi_document(
    max_items=DEFAULTS.max_items, max_body=DEFAULTS.max_body, recipe_limits=DEFAULTS.recipe_limits()
)
schema = schemathesis.openapi.from_dict(DOCUMENT)
# Both, explicitly (the default in this schemathesis version, but the point of the test): negative cases break the
# document on purpose (wrong types, values past a bound or pattern, missing fields) and must get a 4xx.
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
# Any 4xx refuses invalid data (schemathesis' default list lacks 413, the answer to an array past its maxItems).
schema.config.checks.negative_data_rejection.expected_statuses = ["4XX"]


def test_served_document_is_the_fuzzed_one(ingest_url: str) -> None:
    assert requests.get(f"{ingest_url}/api/v2/openapi.json", timeout=10).json() == DOCUMENT


def error_body_names_the_problem(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx answer is JSON with an error code and a human message (and problems, when given, point)."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert isinstance(body, dict), f"error body is not a JSON object: {response.text[:200]}"
    assert isinstance(body.get("error"), str), f"no error code: {body}"
    assert body["error"], f"empty error code: {body}"
    assert isinstance(body.get("message"), str), f"no message: {body}"
    assert body["message"], f"empty message: {body}"
    for problem in body.get("problems", []):
        assert {"pointer", "message"} <= problem.keys(), f"problem without pointer/message: {problem}"
    return True


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_answers_as_documented(case: Any, ingest_url: str) -> None:
    response = case.call(base_url=ingest_url, headers=AUTH, timeout=10)
    REQUESTS_SENT.append(f"{case.method} {case.formatted_path}")
    if case.meta is not None and case.meta.generation.mode.is_negative:
        NEGATIVE_SENT.append(f"{case.method} {case.formatted_path}")
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
            error_body_names_the_problem,
        ],
        headers=AUTH,
    )


# --- raw bodies: what no JSON serializer writes, but a socket can carry -----------------------------------------

BIG_INT = "@big-int@"  # replaced, after serialising, by an integer of 5000 digits (json cannot write one)
ODD_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x1b[31m",
    "\x85",
    "\ufffd",
    "\ud800",
    "x\udfffy",
    "\U0001f600",
    "\ufeff",
    "x" * 10_001,
    "999-" + "a" * 100,
    "999-ok",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00Z",
    "9998-12-31T23:59:59Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T00:00:00Z",
    "created",
    BIG_INT,
]
FIELDS = [
    "recipeId", "orderNumber", "orderId", "itemId", "itemQuantity", "eventId", "type", "occurredAt", "items",
    "id", "created", "name", "components", "views", "attachments", "custom", "assembly", "recipe", "tags",
    "quantityMultiplier", "integrationIds",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(ODD_STRINGS),
    st.text(st.characters(exclude_categories=()), max_size=20),  # Cs included: lone surrogates
)
keys = st.one_of(st.sampled_from(FIELDS), st.sampled_from(ODD_STRINGS), st.text(max_size=8))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
records = st.dictionaries(st.sampled_from(FIELDS), values, max_size=8)
POSTS = ["/api/v2/recipe/order", "/api/v2/orders/events", "/api/v2/recipes", "/api/v2/integrations/trigger"]


def raw_json(value: object) -> bytes:
    # ensure_ascii writes a lone surrogate as its \\udXXX escape; allow_nan writes NaN and Infinity.
    text = json.dumps(value, ensure_ascii=True, allow_nan=True).replace(json.dumps(BIG_INT), "9" * 5000)
    return text.encode()


@given(
    path=st.sampled_from(POSTS),
    document=st.one_of(records, st.lists(records, max_size=3), values),
    framing=st.sampled_from(["plain", "bom", "trailing", "truncated"]),
)
@settings(max_examples=RAW_BODIES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_raw_hostile_json_bodies_are_refused_with_a_json_4xx(
    ingest_url: str, path: str, document: object, framing: str
) -> None:
    body = raw_json(document)
    body = {"plain": body, "bom": b"\xef\xbb\xbf" + body, "trailing": body + b" x", "truncated": body[:-1]}[framing]
    headers = AUTH | {"Content-Type": "application/json"}
    response = requests.post(f"{ingest_url}{path}", data=body, headers=headers, timeout=10)
    REQUESTS_SENT.append(f"POST {path} (raw)")
    assert response.status_code < 500, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/json")
    if response.status_code >= 400:
        error_body_names_the_problem(None, response, None)


def test_fuzz_sent_enough_requests_and_enough_of_them_invalid() -> None:
    print(f"schemathesis and the raw bodies sent {len(REQUESTS_SENT)} requests, {len(NEGATIVE_SENT)} negative")
    assert len(REQUESTS_SENT) >= MINIMUM_REQUESTS, f"only {len(REQUESTS_SENT)} generated requests were sent"
    assert len(NEGATIVE_SENT) >= MINIMUM_NEGATIVE, f"only {len(NEGATIVE_SENT)} negative requests were sent"
