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
from selenium.webdriver.support.select import Select

from relay_ingest_api.console import add_console_routes
from relay_testing.browser import Browser, LoopThread, chromium, missing_chromium

pytestmark = pytest.mark.skipif(missing_chromium() is not None, reason=str(missing_chromium()))

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "test-artifacts" / "console"
KEY = "stand-in-key"
REPLAY_STAND_IN_BATCH = 3


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
    # Bulk replay: the final failures it may select (listed under Dead letters until replayed), every body it got,
    # answers to give the next real calls before anything else, and how often Dead letters was read.
    replay_pool: list[dict[str, Any]] = field(default_factory=list)
    replayed: list[str] = field(default_factory=list)
    replay_bodies: list[dict[str, Any]] = field(default_factory=list)
    replay_refusals: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    failed_reads: int = 0
    # Pause / resume: each body received as (integration, action, body); the state the overview shows per
    # integration; how many overview reads to answer with the old state first (the store reading the change).
    state_changes: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    state_lag_reads: int = 0

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
        app.router.add_post("/api/v2/deliveries/replay", self.replay)
        app.router.add_post("/api/v2/integrations/{integration_id}/{action:pause|resume}", self.change_state)
        return app

    async def change_state(self, request: web.Request) -> web.Response:
        integration, action = request.match_info["integration_id"], request.match_info["action"]
        text = await request.text()
        body = json.loads(text) if text else {}
        self.state_changes.append((integration, action, body))
        if integration == "demo-s3" and action == "pause" and body.get("reason") == "forbidden":
            message = "this API key lacks the admin permission"
            return web.json_response({"error": "forbidden", "message": message}, status=403)
        changed_at = f"2026-12-01T12:0{len(self.state_changes) % 10}:00.000Z"
        state = "paused" if action == "pause" else "active"
        self.states[integration] = {"state": state, "stateChangedAt": changed_at, "stateReason": body.get("reason")}
        # The overview shows it a read or two later, as the real API does once the store has read the change.
        self.state_lag_reads = 2
        return web.json_response({"integrationId": integration, "state": state, "changedAt": changed_at}, status=202)

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
        lagging = self.state_lag_reads > 0
        self.state_lag_reads = max(0, self.state_lag_reads - 1)
        answer: dict[str, list[dict[str, Any]]] = {
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
        if not lagging:
            for integration in answer["integrations"]:
                integration.update(self.states.get(integration["id"], {}))
        return web.json_response(answer)

    def replay_matching(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            d
            for d in self.replay_pool
            if d["deliveryId"] not in self.replayed and body.get("integrationId") in (None, d["integration"])
        ]

    async def replay(self, request: web.Request) -> web.Response:
        """The replay contract, small: at most ``REPLAY_STAND_IN_BATCH`` a batch (``limit`` is an upper bound), so
        a few deliveries make several batches."""
        body = await request.json()
        self.replay_bodies.append(body)
        since = body.get("since")
        if not isinstance(since, str) or not since.endswith("Z") or ("until" in body and body["until"] < since):
            problem = {"pointer": "/since", "message": "must be an RFC 3339 instant before until"}
            return web.json_response(
                {"error": "invalid_fields", "message": "1 invalid field(s)", "problems": [problem]}, status=400
            )
        matching = self.replay_matching(body)
        if body.get("dryRun"):
            return web.json_response(
                {"dryRun": True, "matched": len(matching), "replayed": 0, "deliveries": [], "next": None}
            )
        if self.replay_refusals:
            status, headers = self.replay_refusals.pop(0)
            refusal = {"error": "too_many_requests", "message": "the tenant's trigger budget is spent"}
            return web.json_response(refusal, status=status, headers=headers)
        batch = matching[: min(int(body.get("limit", 25)), REPLAY_STAND_IN_BATCH)]
        self.replayed.extend(d["deliveryId"] for d in batch)
        more = len(matching) > len(batch)
        answer = {
            "dryRun": False,
            "matched": len(matching),
            "replayed": len(batch),
            "deliveries": [
                {
                    "deliveryId": d["deliveryId"],
                    "replayTriggerId": f"replay-{d['deliveryId']}",
                    "integration": d["integration"],
                    "orderId": d["orderId"],
                    "orderNumber": d["orderNumber"],
                    "recipeId": d["recipeId"],
                }
                for d in batch
            ],
            "next": f"after-{batch[-1]['deliveryId']}" if more else None,
        }
        return web.json_response(answer, status=202)

    async def failed(self, _request: web.Request) -> web.Response:
        self.failed_reads += 1
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
                    *(
                        {**row, **d, "type": d["integration"].removeprefix("demo-")}
                        for d in self.replay_pool
                        if d["deliveryId"] not in self.replayed
                    ),
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


def test_pause_with_a_reason_shows_the_paused_badge_and_resume_brings_it_back(signed_in: Served) -> None:
    browser, api = signed_in.browser, signed_in.api
    browser.driver.find_element(By.LINK_TEXT, "Integrations").click()
    card = browser.visible('li[data-integration="demo-sftp"]')
    assert not card.find_elements(By.CSS_SELECTOR, ".badge.paused")
    # Keyboard only: focus Pause, Enter opens the in-page reason field, typing and Enter sends.
    pause = card.find_element(By.CSS_SELECTOR, "button[data-action=pause]")
    browser.driver.execute_script("arguments[0].focus()", pause)
    pause.send_keys(Keys.ENTER)
    reason = browser.visible('li[data-integration="demo-sftp"] input[name=reason]')
    assert browser.driver.switch_to.active_element == reason
    reason.send_keys("share down <b>until</b> 14:00", Keys.ENTER)
    paused = browser.visible('li[data-integration="demo-sftp"][data-state="paused"]')
    assert api.state_changes[-1] == ("demo-sftp", "pause", {"reason": "share down <b>until</b> 14:00"})
    assert paused.find_element(By.CSS_SELECTOR, ".badge.paused").text == "Paused"
    line = paused.find_element(By.CSS_SELECTOR, ".paused-line")
    assert "Reason: share down <b>until</b> 14:00" in line.text  # as text, never markup
    assert (line.find_element(By.CSS_SELECTOR, "time").get_attribute("datetime") or "").startswith("2026-12-01T12:0")
    assert "is paused" in paused.find_element(By.CSS_SELECTOR, ".status-text").text
    resume = paused.find_element(By.CSS_SELECTOR, "button[data-action=resume]")
    assert browser.driver.switch_to.active_element == resume  # focus follows the redrawn card
    resume.send_keys(Keys.ENTER)
    active = browser.visible('li[data-integration="demo-sftp"][data-state="active"]')
    assert api.state_changes[-1] == ("demo-sftp", "resume", {})
    assert not active.find_elements(By.CSS_SELECTOR, ".badge.paused, .paused-line")
    assert "is active" in active.find_element(By.CSS_SELECTOR, ".status-text").text


def test_a_pause_the_key_may_not_make_says_so(signed_in: Served) -> None:
    browser = signed_in.browser
    browser.driver.find_element(By.LINK_TEXT, "Integrations").click()
    card = browser.visible('li[data-integration="demo-s3"]')
    card.find_element(By.CSS_SELECTOR, "button[data-action=pause]").click()
    browser.visible('li[data-integration="demo-s3"] input[name=reason]').send_keys("forbidden")
    card.find_element(By.CSS_SELECTOR, "button[data-action=confirm-pause]").click()
    status = browser.text_in('li[data-integration="demo-s3"] .status-text.error', "may not do that")
    assert "admin permission" in status.text
    assert card.find_element(By.CSS_SELECTOR, "button[data-action=confirm-pause]").is_enabled()
    card.find_element(By.CSS_SELECTOR, "button[data-action=cancel-pause]").click()
    assert not card.find_element(By.CSS_SELECTOR, "input[name=reason]").is_displayed()


def test_dead_letters_trigger_again_per_order_or_recipe(signed_in: Served) -> None:
    browser = signed_in.browser
    browser.driver.find_element(By.LINK_TEXT, "Dead letters").click()
    browser.text_in(".summary-line", "2 failed deliveries")
    buttons = browser.driver.find_elements(By.CSS_SELECTOR, "button[data-action=trigger-again]")
    # The stand-in API is the module's: earlier tests' triggers are in its list too.
    before = len(signed_in.api.triggers)
    buttons[0].click()
    browser.text_in("table.dead-letters .status-text", "Triggered 1 run")
    buttons[1].click()
    browser.wait(lambda _d: len(signed_in.api.triggers) >= before + 2, what="the second trigger")
    assert signed_in.api.triggers[before:] == [
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


@pytest.fixture
def replay_pool(signed_in: Served) -> Iterator[Served]:
    """Six final failures of demo-sftp and one of demo-s3 to replay; emptied afterwards (the API is shared)."""
    api = signed_in.api
    api.replay_pool = [
        {
            "deliveryId": f"r{n}",
            "integration": "demo-sftp" if n <= 6 else "demo-s3",
            "orderId": f"order-r{n}",
            "orderNumber": f"20{n:02d}",
            "recipeId": "999-StandIn",
        }
        for n in range(1, 8)
    ]
    api.replayed.clear()
    api.replay_bodies.clear()
    api.replay_refusals.clear()
    try:
        yield signed_in
    finally:
        api.replay_pool = []
        api.replay_refusals.clear()


def _open_replay(served: Served) -> None:
    browser = served.browser
    browser.driver.find_element(By.LINK_TEXT, "Dead letters").click()
    browser.text_in(".summary-line", "9 failed deliveries")
    browser.wait(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#replay-integration option")) == 3, what="the integrations"
    )


def _count(served: Served, expected: str) -> None:
    served.browser.driver.find_element(By.CSS_SELECTOR, "button[data-action=replay-count]").click()
    served.browser.text_in("#replay-status", expected)


def _real_replays(api: StandInApi) -> list[dict[str, Any]]:
    return [b for b in api.replay_bodies if not b["dryRun"]]


def test_replay_counts_then_replays_in_batches_with_progress_and_refreshes_the_list(replay_pool: Served) -> None:
    browser, api = replay_pool.browser, replay_pool.api
    driver = browser.driver
    _open_replay(replay_pool)
    _count(replay_pool, "7 deliveries would be replayed (all integrations")
    Select(driver.find_element(By.ID, "replay-integration")).select_by_value("demo-sftp")
    assert not driver.find_element(By.CSS_SELECTOR, "button[data-action=replay-start]").is_displayed(), (
        "a changed form needs a new count"
    )
    _count(replay_pool, "6 deliveries would be replayed (demo-sftp")
    dry = api.replay_bodies[-1]
    assert dry["dryRun"] is True
    assert dry["integrationId"] == "demo-sftp"
    assert dry["status"] == "failed"
    assert dry["since"].endswith("Z")
    assert "until" not in dry
    start = browser.visible("button[data-action=replay-start]")
    assert start.text == "Replay 6 deliveries"
    start.send_keys(Keys.ENTER)
    # The confirm step is in the page and takes the focus: Enter confirms.
    browser.text_in(".replay-confirm", "Replay 6 deliveries of demo-sftp")
    focused = driver.switch_to.active_element
    assert focused.get_attribute("data-action") == "replay-confirm"
    focused.send_keys(Keys.ENTER)
    browser.text_in("#replay-status", "Done. Replayed 6 deliveries (demo-sftp: 6).")
    progress = driver.find_element(By.ID, "replay-progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == "6"
    real = _real_replays(api)
    assert [b.get("after") for b in real] == [None, "after-r3"]
    assert all(b["limit"] == 25 and b["integrationId"] == "demo-sftp" and b["since"] == dry["since"] for b in real)
    assert api.replayed == ["r1", "r2", "r3", "r4", "r5", "r6"]
    # The list is read again: only the two older rows and demo-s3's failure are left.
    browser.text_in(".summary-line", "3 failed deliveries")
    rows = driver.find_elements(By.CSS_SELECTOR, "table.dead-letters tbody tr")
    assert [r.get_attribute("data-delivery-id") for r in rows] == ["d1", "d2", "r7"]
    assert "Replay done: 6 deliveries" in driver.find_element(By.ID, "announcer").text


def test_replay_honours_a_429_retry_after_and_sends_the_same_batch_again(replay_pool: Served) -> None:
    browser, api = replay_pool.browser, replay_pool.api
    _open_replay(replay_pool)
    api.replay_refusals = [(429, {"Retry-After": "1"})]
    _count(replay_pool, "7 deliveries would be replayed")
    browser.visible("button[data-action=replay-start]").click()
    browser.visible("button[data-action=replay-confirm]").click()
    browser.text_in("#replay-status", "HTTP 429: waiting 1 s before sending the batch again")
    browser.text_in("#replay-status", "Done. Replayed 7 deliveries (demo-sftp: 6, demo-s3: 1).", within=30)
    first, again, *rest = _real_replays(api)
    assert first == again, "the refused batch is sent again as it was"
    assert [b.get("after") for b in rest] == ["after-r3", "after-r6"]
    assert api.replayed == [f"r{n}" for n in range(1, 8)]


def test_replay_stops_when_asked_while_waiting_and_says_what_was_done(replay_pool: Served) -> None:
    browser, api = replay_pool.browser, replay_pool.api
    _open_replay(replay_pool)
    _count(replay_pool, "7 deliveries would be replayed")
    # The batch is refused with a long Retry-After: Stop ends the wait at once, the batch not sent again.
    api.replay_refusals = [(503, {"Retry-After": "120"})]
    browser.visible("button[data-action=replay-start]").click()
    browser.visible("button[data-action=replay-confirm]").click()
    browser.text_in("#replay-status", "HTTP 503: waiting 120 s")
    stop = browser.visible("button[data-action=replay-stop]")
    stop.click()
    browser.text_in("#replay-status", "Stopped. Replayed 0 deliveries. Count again to replay the rest.")
    assert not browser.driver.find_element(By.CSS_SELECTOR, "button[data-action=replay-stop]").is_displayed()
    assert api.replayed == []
    assert len(_real_replays(api)) == 1
