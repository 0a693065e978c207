"""schemathesis against the ingest API's own OpenAPI document, on a real broker: at least 1,000 generated
requests, no 5xx, responses as documented, and every error a JSON body naming the problem."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from relay_ingest_api.main import create_app, start_server
from relay_ingest_api.openapi import openapi_document
from relay_ingest_api.settings import Settings
from relay_platform.links import LinkSettings
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import KafkaSettings

pytestmark = pytest.mark.integration

TENANTS_FILE = Path(__file__).parent / "fuzz_tenants.yaml"
AUTH = {"Authorization": "Bearer demo-key"}
REQUESTS_SENT: list[str] = []
MINIMUM_REQUESTS = 1000


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

        store = web.Application()
        store.router.add_get("/internal/v1/orders", no_orders)
        store.router.add_get("/internal/v1/audit", nothing_stuck)
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
            links=LinkSettings.model_validate({"signing_key": "fuzz-signing-key", "public_base_url": "http://x"}),
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
    import requests

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
DEFAULTS = Settings.model_construct()
DOCUMENT = openapi_document(max_items=DEFAULTS.max_items, max_body=DEFAULTS.max_body)
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_served_document_is_the_fuzzed_one(ingest_url: str) -> None:
    import requests

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
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_answers_as_documented(case: Any, ingest_url: str) -> None:
    response = case.call(base_url=ingest_url, headers=AUTH, timeout=10)
    REQUESTS_SENT.append(f"{case.method} {case.formatted_path}")
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            error_body_names_the_problem,
        ],
        headers=AUTH,
    )


def test_fuzz_sent_at_least_a_thousand_requests() -> None:
    print(f"schemathesis sent {len(REQUESTS_SENT)} requests")
    assert len(REQUESTS_SENT) >= MINIMUM_REQUESTS, f"only {len(REQUESTS_SENT)} generated requests were sent"
