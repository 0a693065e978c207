"""The console's panels for the endpoints still being built (recent orders, integrations, dead letters, attempt
logs), in a real headless Chromium against a stand-in API that answers with the shapes the console is written to.

The console's own files come from ``console.add_console_routes``, as ingest-api serves them. The whole-suite flow is
``test_console_browser.py``; this module covers what the suite cannot answer yet, in a few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from relay_ingest_api.console import add_console_routes
from relay_testing.browser import Browser, LoopThread, chromium, missing_chromium

pytestmark = pytest.mark.skipif(missing_chromium() is not None, reason=str(missing_chromium()))

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "test-artifacts" / "console"
KEY = "stand-in-key"


def _order(number: int, *, attempts: int = 3, status: str = "failed") -> dict[str, Any]:
    log = [
        {
            "attempt": n,
            "status": "failed",
            "at": f"2026-12-01T10:0{n}:00Z",
            "errorClass": "TransientError",
            "error": "connection refused",
        }
        for n in range(1, attempts + 1)
    ]
    return {
        "orderId": f"order-{number}",
        "orderNumber": f"{1000 + number}",
        "status": "open",
        "updatedAt": f"2026-12-01T1{number % 10}:00:00Z",
        "items": [{"recipeId": "999-StandIn", "itemId": "1", "itemQuantity": 1}],
        "deliveries": [
            {
                "integration": "demo-sftp",
                "type": "sftp",
                "recipeId": "999-StandIn",
                "trigger": "order_linked",
                "status": status,
                "attempts": attempts,
                "lastError": "connection refused",
                "files": [],
                "attemptLog": log,
            },
        ],
    }


@dataclass
class StandInApi:
    """What the console calls, answered from memory; ``triggers`` keeps every trigger body received."""

    triggers: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for number in (1, 2, 3):
            order = _order(number)
            self.orders[order["orderId"]] = order

    def app(self) -> web.Application:
        @web.middleware
        async def key_only(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.path.startswith("/api/") and request.headers.get("Authorization") != f"Bearer {KEY}":
                return web.json_response({"error": "unauthorized", "message": "bad key"}, status=401)
            response: web.StreamResponse = await handler(request)
            return response

        app = web.Application(middlewares=[key_only])
        add_console_routes(app)
        app.router.add_get("/api/v2/orders/recent", self.recent)
        app.router.add_get("/api/v2/orders", self.lookup)
        app.router.add_post("/api/v2/integrations/trigger", self.trigger)
        app.router.add_get("/api/v2/integrations", self.integrations)
        app.router.add_get("/api/v2/deliveries/failed", self.failed)
        return app

    async def recent(self, request: web.Request) -> web.Response:
        newest = sorted(self.orders.values(), key=lambda o: o["updatedAt"], reverse=True)
        if request.query.get("after") == "page-2":
            return web.json_response({"orders": newest[2:], "next": None})
        return web.json_response({"orders": newest[:2], "next": "page-2"})

    async def lookup(self, request: web.Request) -> web.Response:
        if "orderId" not in request.query:
            return web.json_response({"error": "bad_request", "message": "name one lookup"}, status=400)
        found = self.orders.get(request.query["orderId"])
        return web.json_response({"orders": [found] if found else [], "next": None})

    async def trigger(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.triggers.append(body)
        if body.get("orderId") == "order-3":
            return web.json_response(
                {
                    "error": "bad_request",
                    "message": "<b>no</b> such integration",
                    "problems": [{"pointer": "/integrationIds/0", "message": "<img src=x> is not enabled"}],
                },
                status=400,
            )
        order = self.orders.get(body.get("orderId", ""))
        if order is not None:
            # The re-run's delivery: a new row that already succeeded, as the pipeline would record it.
            order["deliveries"].append(
                {
                    "integration": "demo-sftp",
                    "type": "sftp",
                    "recipeId": "999-StandIn",
                    "trigger": "manual",
                    "status": "succeeded",
                    "attempts": 1,
                    "files": ["1001_Ticket.pdf"],
                }
            )
        summary = {"triggerId": "t1", "feed": "order", "recipeId": "999-StandIn", "integrationIds": ["demo-sftp"]}
        return web.json_response({"triggered": 1, "triggers": [summary]}, status=202)

    async def integrations(self, _request: web.Request) -> web.Response:
        common = {"feeds": ["order"], "enabled": True, "windowHours": 24}
        return web.json_response(
            {
                "integrations": [
                    {
                        **common,
                        "id": "demo-sftp",
                        "type": "sftp",
                        "description": "Engraving share",
                        "counts": {"succeeded": 4, "failed": 3, "retrying": 0, "pending": 0},
                        "lastSuccessAt": "2026-12-01T09:00:00Z",
                        "lastFailureAt": "2026-12-01T10:00:00Z",
                    },
                    {
                        **common,
                        "id": "demo-s3",
                        "type": "s3",
                        "description": "Warehouse bucket",
                        "counts": {"succeeded": 9, "failed": 0, "retrying": 0, "pending": 1},
                        "lastSuccessAt": "2026-12-01T10:00:00Z",
                        "lastFailureAt": None,
                    },
                ]
            }
        )

    async def failed(self, _request: web.Request) -> web.Response:
        row = {
            "type": "sftp",
            "integration": "demo-sftp",
            "attempts": 3,
            "lastError": "connection refused",
            "updatedAt": "2026-12-01T10:03:00Z",
            "recipeId": "999-StandIn",
        }
        return web.json_response(
            {
                "deliveries": [
                    {**row, "deliveryId": "d1", "orderId": "order-1", "orderNumber": "1001"},
                    {**row, "deliveryId": "d2", "orderId": None, "orderNumber": None},
                ],
                "next": None,
            }
        )


@dataclass
class Served:
    url: str
    api: StandInApi
    browser: Browser


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    api = StandInApi()
    loop = LoopThread("console-stand-in")
    runner = web.AppRunner(api.app(), access_log=None)
    try:
        loop.run(runner.setup(), timeout=10)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run(site.start(), timeout=10)
        host, port = runner.addresses[0][:2]
        with chromium(SCREENSHOTS) as browser:
            yield Served(f"http://{host}:{port}", api, browser)
    finally:
        loop.run(runner.cleanup(), timeout=10)
        loop.close()


@pytest.fixture
def signed_in(served: Served, request: pytest.FixtureRequest) -> Iterator[Served]:
    driver = served.browser.driver
    driver.set_window_size(1280, 900)
    with served.browser.screenshot_after(request.node.name):
        driver.get(f"{served.url}/console/")
        driver.execute_script("sessionStorage.clear(); location.hash = '#/orders'")
        driver.refresh()
        served.browser.visible("#api-key").send_keys(KEY, Keys.ENTER)
        served.browser.visible("#search-value")
        yield served


def test_recent_orders_are_paged_newest_first_with_attempt_timelines(signed_in: Served) -> None:
    browser = signed_in.browser
    browser.text_in(".summary-line", "Newest orders first")
    numbers = [e.text for e in browser.driver.find_elements(By.CSS_SELECTOR, "article.card h2")]
    assert numbers == ["Order 1003", "Order 1002"]
    browser.driver.find_element(By.CSS_SELECTOR, "button.more").click()
    browser.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "article.card")) == 3, what="the second page")
    assert not browser.driver.find_element(By.CSS_SELECTOR, "button.more").is_displayed()
    card = browser.driver.find_elements(By.CSS_SELECTOR, "article.card")[0]
    updated = card.find_element(By.CSS_SELECTOR, ".meta time")
    assert updated.get_attribute("title") == "2026-12-01T13:00:00.000Z (UTC)"
    card.find_element(By.CSS_SELECTOR, "details summary").click()
    steps = card.find_elements(By.CSS_SELECTOR, "ol.timeline li")
    assert len(steps) == 3
    assert "TransientError: connection refused" in steps[0].text


def test_a_trigger_refusal_is_shown_verbatim_as_text(signed_in: Served) -> None:
    browser = signed_in.browser
    browser.driver.get(f"{signed_in.url}/console/#/orders?orderId=order-3")
    browser.visible('article.card[data-order-id="order-3"] button[data-action=trigger]').click()
    status = browser.text_in("article.card .status-text.error", "bad_request")
    assert "HTTP 400 bad_request: <b>no</b> such integration" in status.text
    assert "/integrationIds/0: <img src=x> is not enabled" in status.text
    assert browser.driver.execute_script("return document.querySelectorAll('#view b, #view img').length") == 0


def test_a_trigger_for_some_integrations_shows_the_new_delivery(signed_in: Served) -> None:
    browser = signed_in.browser
    browser.driver.get(f"{signed_in.url}/console/#/orders?orderId=order-2")
    card = browser.visible('article.card[data-order-id="order-2"]')
    card.find_element(By.CSS_SELECTOR, ".actions details summary").click()
    card.find_element(By.CSS_SELECTOR, 'input[type=checkbox][value="demo-sftp"]').click()
    card.find_element(By.CSS_SELECTOR, "button[data-action=trigger]").click()
    browser.text_in('article.card[data-order-id="order-2"] .status-text', "Done: 2 deliveries")
    assert signed_in.api.triggers[-1] == {"orderId": "order-2", "integrationIds": ["demo-sftp"]}
    assert "Order 1002: 2 deliveries" in browser.driver.find_element(By.ID, "announcer").text


def test_integrations_show_counts_and_health(signed_in: Served) -> None:
    browser = signed_in.browser
    browser.driver.find_element(By.LINK_TEXT, "Integrations").click()
    sftp = browser.visible('li[data-integration="demo-sftp"]')
    assert sftp.find_element(By.CSS_SELECTOR, ".badge").text == "failing"
    assert "3\nfailed" in sftp.find_element(By.CSS_SELECTOR, ".counts").text
    s3 = browser.visible('li[data-integration="demo-s3"]')
    assert s3.find_element(By.CSS_SELECTOR, ".badge").text == "healthy"
    link = browser.driver.find_element(By.CSS_SELECTOR, '[data-nav="integrations"]')
    assert link.get_attribute("aria-current") == "page"


def test_dead_letters_trigger_again_per_order_or_recipe(signed_in: Served) -> None:
    browser = signed_in.browser
    browser.driver.find_element(By.LINK_TEXT, "Dead letters").click()
    browser.text_in(".summary-line", "2 failed deliveries")
    buttons = browser.driver.find_elements(By.CSS_SELECTOR, "button[data-action=trigger-again]")
    buttons[0].click()
    browser.text_in("table.dead-letters .status-text", "Triggered 1 run")
    buttons[1].click()
    browser.wait(lambda _d: len(signed_in.api.triggers) >= 2, what="the second trigger")
    assert signed_in.api.triggers[-2:] == [
        {"orderId": "order-1", "integrationIds": ["demo-sftp"]},
        {"recipeId": "999-StandIn", "integrationIds": ["demo-sftp"]},
    ]
    # Back and forward work on hash routes.
    browser.driver.back()
    browser.visible("#search-value")
    browser.driver.forward()
    browser.text_in("h1", "Dead letters")


def test_the_console_loads_nothing_from_elsewhere(signed_in: Served) -> None:
    entries = signed_in.browser.driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert entries, "the page loaded its modules"
    assert all(json.dumps(name).startswith(json.dumps(signed_in.url)[:-1]) for name in entries), entries
