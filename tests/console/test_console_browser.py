"""The operator console in a real headless Chromium against the whole suite (``relay dev``'s ``DevStack``).

One stack and one browser for the module. The stack's event loop runs in a thread of its own, so the services'
output keeps being read while the browser calls block the test's thread. Each test leaves a screenshot in
``var/test-artifacts/console/<test>.png``, passed or failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import pytest
from aiokafka import AIOKafkaProducer
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select
from typer.testing import CliRunner, Result

from relay_cli import demo
from relay_cli.dev import DevStack, discover_services
from relay_cli.main import app as relay_cli
from relay_contracts.messages import IntegrationStateChanged, Message
from relay_contracts.topics import INTEGRATIONS_CONTROL
from relay_devservers.kafka import TansuBroker
from relay_devservers.processes import free_port
from relay_devservers.webhooks import Reply
from relay_testing.browser import Browser, LoopThread, chromium, missing_chromium

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(missing_chromium() is not None, reason=str(missing_chromium())),
]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "test-artifacts" / "console"
KEY = "demo-key"
# A second key of the demo tenant that may look orders up but not trigger: the console's 403 message.
READ_ONLY_KEY = "console-orders-only-" + secrets.token_hex(8)
RUN = secrets.token_hex(3)
RECIPE_ID = f"999-Console{RUN}"
ORDER_ID = f"console-order-{RUN}"
ORDER_NUMBER = f"C-{RUN}"
# Markup, a right-to-left override and a zero-width space: all allowed in an order ID, all must stay text.
HOSTILE_ID = f"<img src=x onerror=window.__pwned=1>\u202e{RUN}\u200b"
# The demo Zapier hook: one attempt allowed in this module's tenant file, so a 500 is a final failure at once.
HOOK_PATH = "/hooks/catch/demo"
REPLAY_ORDER_IDS = (f"replay-order-{RUN}-1", f"replay-order-{RUN}-2")
_UNINHERITED = ("KAFKA_BOOTSTRAP_SERVERS", "RELAY_TENANTS_FILE", "OBJECT_STORE_URL", "ASSOCIATION_STORE_API_TOKEN")
T = TypeVar("T")


def _tenants_file(var: Path, ports: Mapping[str, int]) -> Path:
    """``config/dev.yaml`` with the demo servers on ``ports``, one more, read-only, key, and the Zapier hook allowed
    one attempt (a failure there is final at once: the replay test's dead letters)."""
    text = (ROOT / "config" / "dev.yaml").read_text()
    key_hash = hashlib.sha256(READ_ONLY_KEY.encode()).hexdigest()
    hook = f"        hook-url: http://127.0.0.1:{demo.DEMO_PORTS['hooks']}{HOOK_PATH}\n"
    moves = {
        hook: hook + "        retry: {max-attempts: 1}\n",
        f"port: {demo.DEMO_PORTS['sftp']}": f"port: {ports['sftp']}",
        f"http://127.0.0.1:{demo.DEMO_PORTS['s3']}": f"http://127.0.0.1:{ports['s3']}",
        f"http://127.0.0.1:{demo.DEMO_PORTS['hooks']}": f"http://127.0.0.1:{ports['hooks']}",
        "        permissions: [order-tracking, recipes:write, recipes:read, admin]\n": (
            "        permissions: [order-tracking, recipes:write, recipes:read, admin]\n"
            f"      - name: console-orders-only\n        sha256: {key_hash}\n        permissions: [order-tracking]\n"
        ),
    }
    for old, new in moves.items():
        assert text.count(old) == 1, f"config/dev.yaml no longer has exactly one {old!r}"
        text = text.replace(old, new)
    path = var / "tenants.yaml"
    path.write_text(text)
    return path


@dataclass
class Suite:
    api: str
    stack: DevStack
    bootstrap: str
    loop: LoopThread

    def request(self, method: str, path: str, body: object = None, key: str = KEY) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.api}{path}", data=data, method=method)
        request.add_header("Authorization", f"Bearer {key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raw = error.read()
            with contextlib.suppress(ValueError):
                return error.code, json.loads(raw)
            return error.code, raw.decode(errors="replace")

    def order(self, order_id: str) -> dict[str, Any] | None:
        status, body = self.request("GET", f"/api/v2/orders?{urllib.parse.urlencode({'orderId': order_id})}")
        assert status == 200, body
        return next((o for o in body["orders"] if o["orderId"] == order_id), None)

    def log_tail(self, lines: int = 40) -> str:
        return self.stack.log_tail(lines)

    def publish(self, topic: str, message: Message, *, key: bytes) -> None:
        """Put ``message`` straight on ``topic``, as a service would (what no public endpoint sends)."""

        async def send() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
            await producer.start()
            try:
                await producer.send_and_wait(topic, message.model_dump_json(by_alias=True).encode(), key=key)
            finally:
                await producer.stop()

        self.loop.run(send(), timeout=30)


def _until(check: Any, *, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        threading.Event().wait(0.25)  # a poll interval between checks of a condition, not a stand-in for it
    raise AssertionError(f"not within {within:g}s: {what}; last seen {last!r}")


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    var = tmp_path_factory.mktemp("console")
    with contextlib.ExitStack() as cleanup:
        loop = LoopThread()
        cleanup.callback(loop.close)
        broker = TansuBroker(var / "tansu")
        cleanup.callback(broker.stop)
        broker.start()
        ports = {name: free_port() for name in demo.DEMO_PORTS}
        tenants = _tenants_file(var, ports)
        cleanup.enter_context(mock.patch.dict(demo.DEMO_PORTS, ports))
        stack = DevStack(
            root=ROOT,
            var=var,
            api_port=free_port(),
            services=discover_services(ROOT),
            demo=True,
            log_path=var / "stack.log",
            default_ports=False,
        )
        with mock.patch.dict(os.environ, clear=False):
            for name in _UNINHERITED:
                os.environ.pop(name, None)
            os.environ.update({"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "RELAY_TENANTS_FILE": str(tenants)})
            cleanup.callback(lambda: loop.run(stack.stop(), timeout=90))
            loop.run(stack.start(), timeout=120)
        loop.run(stack.wait_ready(within_s=90), timeout=100)
        yield _seeded(Suite(f"http://127.0.0.1:{stack.api_port}", stack, broker.bootstrap, loop))


def _seeded(suite: Suite) -> Suite:
    """A recipe and two orders (one plain, one with a hostile ID), their first deliveries settled."""
    recipe = {
        "id": RECIPE_ID,
        "created": "2026-11-20T10:00:00Z",
        "name": "Console Mug",
        "styleCode": "MUG-11",
        "components": [{"name": "Front", "code": "front", "component": {"code": "engraving", "sku": "ENG-1"}}],
    }
    status, body = suite.request("POST", "/api/v2/recipes", recipe)
    assert status == 201, body
    lines = [
        {"recipeId": RECIPE_ID, "orderNumber": ORDER_NUMBER, "orderId": ORDER_ID, "itemId": "1", "itemQuantity": 2},
        {"recipeId": RECIPE_ID, "orderNumber": HOSTILE_ID, "orderId": HOSTILE_ID, "itemId": "1", "itemQuantity": 1},
    ]
    status, body = suite.request("POST", "/api/v2/recipe/order", lines)
    assert status == 202, body

    def settled() -> dict[str, Any] | None:
        order = suite.order(ORDER_ID)
        deliveries = order["deliveries"] if order else []
        return order if deliveries and all(d["status"] != "pending" for d in deliveries) else None

    try:
        _until(settled, within=60, what="the order's first deliveries have an outcome")
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- stack log:\n{suite.log_tail()}") from None
    return suite


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(SCREENSHOTS) as opened:
        yield opened


@pytest.fixture
def page(suite: Suite, browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    browser.driver.set_window_size(1280, 900)
    with browser.screenshot_after(request.node.name):
        yield Page(browser, suite)


@dataclass
class Page:
    browser: Browser
    suite: Suite

    @property
    def driver(self) -> WebDriver:
        return self.browser.driver

    def open(self, route: str = "") -> None:
        self.driver.get(f"{self.suite.api}/console/{route}")
        self.browser.wait(lambda d: d.execute_script("return document.readyState") == "complete", what="page loaded")

    def visible(self, selector: str, *, within: float = 15.0) -> WebElement:
        return self.browser.visible(selector, within=within)

    def text_in(self, selector: str, text: str, *, within: float = 15.0) -> WebElement:
        return self.browser.text_in(selector, text, within=within)

    def sign_in(self, key: str = KEY) -> None:
        self.open()
        self.driver.execute_script("sessionStorage.clear()")
        self.open()
        field = self.visible("#api-key")
        field.send_keys(key, Keys.ENTER)

    def search(self, by: str, value: str) -> None:
        Select(self.visible("#search-field")).select_by_value(by)
        box = self.visible("#search-value")
        box.clear()
        box.send_keys(value, Keys.ENTER)

    def card(self, order_id: str) -> WebElement:
        def find(driver: WebDriver) -> WebElement | None:
            for card in driver.find_elements(By.CSS_SELECTOR, "article.card"):
                if card.get_attribute("data-order-id") == order_id:
                    return card
            return None

        found: WebElement = self.browser.wait(find, what=f"the card of order {order_id!r}")
        return found


def test_a_wrong_key_is_refused_and_the_right_one_opens_the_orders(page: Page) -> None:
    page.sign_in("not-a-key")
    page.text_in("#signin-message", "refused this API key")
    assert page.driver.find_element(By.ID, "shell").is_displayed() is False
    page.visible("#api-key").send_keys(KEY, Keys.ENTER)
    page.text_in("h1", "Review Recent Orders")
    # The key is in this tab's sessionStorage only: not the URL, localStorage or a cookie.
    assert KEY not in page.driver.current_url
    assert page.driver.execute_script("return localStorage.length") == 0
    assert page.driver.get_cookies() == []
    assert page.driver.execute_script("return document.activeElement.id") == "search-value"


@pytest.mark.parametrize(
    ("by", "value"),
    [("recipeId", RECIPE_ID), ("orderId", ORDER_ID), ("orderNumber", ORDER_NUMBER)],
    ids=["recipe-id", "order-id", "order-number"],
)
def test_an_order_is_found_by_each_key_with_its_delivery_statuses(page: Page, by: str, value: str) -> None:
    page.sign_in()
    page.visible("#search-value")
    page.search(by, value)
    card = page.card(ORDER_ID)
    assert ORDER_NUMBER in card.find_element(By.TAG_NAME, "h2").text
    rows = card.find_elements(By.CSS_SELECTOR, "table.deliveries tbody tr")
    expected = page.suite.order(ORDER_ID)
    assert expected is not None
    assert len(rows) == len(expected["deliveries"]) > 0
    statuses = {b.get_attribute("data-status") for b in card.find_elements(By.CSS_SELECTOR, "tbody .badge")}
    assert statuses <= {"succeeded", "failed", "retrying", "pending"}
    assert card.find_element(By.CSS_SELECTOR, f'a[href="#/recipe/{RECIPE_ID}"]').is_displayed()
    assert f"#/orders?{by}=" in page.driver.current_url


def test_trigger_integrations_shows_the_new_attempts_without_a_reload(page: Page) -> None:
    page.sign_in()
    page.visible("#search-value")
    page.search("orderId", ORDER_ID)
    card = page.card(ORDER_ID)
    totals = card.find_element(By.CSS_SELECTOR, "[data-field=totals]")
    before = (int(totals.get_attribute("data-deliveries") or 0), int(totals.get_attribute("data-attempts") or 0))
    page.driver.execute_script("window.__sameDocument = true")
    card.find_element(By.CSS_SELECTOR, "button[data-action=trigger]").click()
    page.text_in("article.card .status-text", "Triggered")

    def risen(driver: WebDriver) -> bool:
        element = page.card(ORDER_ID).find_element(By.CSS_SELECTOR, "[data-field=totals]")
        now = (int(element.get_attribute("data-deliveries") or 0), int(element.get_attribute("data-attempts") or 0))
        return now[0] > before[0] or now[1] > before[1]

    page.browser.wait(risen, within=45, what="more deliveries or attempts after Trigger Integrations")
    assert page.driver.execute_script("return window.__sameDocument") is True
    assert "Triggered" in page.driver.find_element(By.ID, "announcer").text or page.driver.find_element(
        By.ID, "announcer"
    ).text.startswith("Order")


def test_a_key_that_may_not_trigger_is_told_so(page: Page) -> None:
    page.sign_in(READ_ONLY_KEY)
    page.visible("#search-value")
    page.search("orderId", ORDER_ID)
    page.card(ORDER_ID).find_element(By.CSS_SELECTOR, "button[data-action=trigger]").click()
    status = page.text_in("article.card .status-text", "This key may not do that")
    page.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", status)


def test_the_recipe_page_shows_the_pick_ticket_from_a_blob(page: Page) -> None:
    page.sign_in()
    page.visible("#search-value")
    page.open(f"#/recipe/{RECIPE_ID}")
    page.text_in("h1", RECIPE_ID)
    frame = page.visible("iframe.pdf", within=30)
    assert (frame.get_attribute("src") or "").startswith("blob:")
    page.text_in("dl.facts", "Console Mug")
    page.card(ORDER_ID)


def test_hostile_ids_render_as_text(page: Page) -> None:
    page.sign_in()
    page.visible("#search-value")
    # Straight to the hash route: chromedriver cannot type every invisible character.
    page.open(f"#/orders?orderId={urllib.parse.quote(HOSTILE_ID, safe='')}")
    card = page.card(HOSTILE_ID)
    heading = card.find_element(By.TAG_NAME, "h2").text
    assert "<img src=x onerror=window.__pwned=1>" in heading
    # The invisible characters are shown as marked code points rather than reordering the text.
    assert "U+202E" in heading
    assert "U+200B" in heading
    assert page.driver.execute_script("return document.querySelectorAll('img').length") == 0
    assert page.driver.execute_script("return window.__pwned === undefined") is True


def test_an_endpoint_not_built_yet_shows_a_notice(page: Page) -> None:
    page.sign_in()
    page.visible("#search-value")
    for route, path in (
        ("#/orders", "/api/v2/orders/recent?limit=1"),
        ("#/integrations", "/api/v2/integrations"),
        ("#/dead-letters", "/api/v2/deliveries/failed?limit=1"),
    ):
        status, _ = page.suite.request("GET", path)
        page.open(route)
        if status == 404:
            page.text_in("#view .notice", "not available on this server yet")
        else:  # built meanwhile: the panel shows its data, never the notice
            page.browser.wait(lambda d: "Loading" not in d.find_element(By.ID, "view").text, what=f"{route} loaded")
            assert "not available" not in page.driver.find_element(By.ID, "view").text


def test_a_narrow_window_keeps_the_menu_and_the_search(page: Page) -> None:
    page.sign_in()
    page.driver.set_window_size(500, 900)
    search = page.visible("#search-value")
    menu = page.visible("nav.sidebar")
    assert page.driver.find_element(By.LINK_TEXT, "Dead letters").is_displayed()
    # The sidebar collapses above the content.
    assert menu.rect["y"] + menu.rect["height"] <= search.rect["y"]
    # ...and the search is still in the first screenful, not pushed below it.
    assert search.rect["y"] + search.rect["height"] <= page.driver.execute_script("return window.innerHeight")
    assert page.driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def test_the_keyboard_reaches_the_search_and_enter_submits(page: Page) -> None:
    page.sign_in()
    page.visible("#search-value")
    # From the top, as a keyboard user starts: the first sidebar link, then Tab onwards.
    page.driver.execute_script("document.querySelector('nav.sidebar a').focus()")
    for _ in range(12):
        if page.driver.execute_script("return document.activeElement.id") == "search-value":
            break
        page.driver.switch_to.active_element.send_keys(Keys.TAB)
    assert page.driver.execute_script("return document.activeElement.id") == "search-value"
    page.driver.switch_to.active_element.send_keys(ORDER_ID, Keys.ENTER)
    page.card(ORDER_ID)
    assert "orderId=" in page.driver.current_url


def test_a_401_mid_session_goes_back_to_sign_in(page: Page) -> None:
    page.sign_in()
    page.visible("#search-value")
    page.driver.execute_script("sessionStorage.setItem('relay.console.apiKey', 'revoked-key')")
    page.search("orderId", ORDER_ID)
    page.text_in("#signin-message", "Sign in again")
    assert page.driver.execute_script("return sessionStorage.length") == 0


def test_sign_out_clears_the_key(page: Page) -> None:
    page.sign_in()
    page.visible("#search-value")
    assert page.driver.execute_script("return sessionStorage.length") == 1
    page.driver.find_element(By.ID, "sign-out").click()
    page.visible("#api-key")
    assert page.driver.execute_script("return sessionStorage.length") == 0
    assert page.driver.find_element(By.ID, "view").text == ""


# --- bulk replay against the real suite: the console, then the CLI ---------------------------------------------


def _replay_cli(suite: Suite, *args: str) -> Result:
    env = {"RELAY_API_URL": suite.api, "RELAY_API_KEY": KEY}
    return CliRunner().invoke(relay_cli, ["replay", "--integration", "demo-zapier", "--since", "1h", *args], env=env)


def test_a_destination_down_is_replayed_once_from_the_console_and_the_cli_then_finds_nothing(page: Page) -> None:
    suite, hooks = page.suite, page.suite.stack.hooks
    # The hook is down for these orders' first (and only allowed) attempt: each ends as a final failure.
    hooks.script(HOOK_PATH, *(Reply(500, body='{"status": "error"}') for _ in REPLAY_ORDER_IDS))
    lines = [
        {"recipeId": RECIPE_ID, "orderNumber": f"R-{n}-{RUN}", "orderId": order_id, "itemId": "1", "itemQuantity": 1}
        for n, order_id in enumerate(REPLAY_ORDER_IDS)
    ]
    status, body = suite.request("POST", "/api/v2/recipe/order", lines)
    assert status == 202, body

    def failed() -> list[str] | None:
        query = urllib.parse.urlencode({"integrationId": "demo-zapier", "limit": 100})
        status, listed = suite.request("GET", f"/api/v2/deliveries/failed?{query}")
        assert status == 200, listed
        ids = sorted(d["orderId"] for d in listed["deliveries"] if d["orderId"] in REPLAY_ORDER_IDS)
        return ids if len(ids) == len(REPLAY_ORDER_IDS) else None

    _until(failed, within=90, what="both Zapier deliveries failed for good")
    before = len(hooks.requests_to(HOOK_PATH))

    # The operator: Dead letters, count the demo-zapier failures, replay them, see it done.
    page.sign_in()
    page.visible("#search-value")
    page.driver.find_element(By.LINK_TEXT, "Dead letters").click()
    page.browser.wait(
        lambda d: any(
            o.get_attribute("value") == "demo-zapier"
            for o in d.find_elements(By.CSS_SELECTOR, "#replay-integration option")
        ),
        what="the tenant's integrations in the replay form",
    )
    Select(page.driver.find_element(By.ID, "replay-integration")).select_by_value("demo-zapier")
    page.driver.find_element(By.CSS_SELECTOR, "button[data-action=replay-count]").click()
    page.text_in("#replay-status", "2 deliveries would be replayed (demo-zapier")
    page.visible("button[data-action=replay-start]").click()
    page.visible("button[data-action=replay-confirm]").click()
    page.text_in("#replay-status", "Done. Replayed 2 deliveries (demo-zapier: 2).", within=30)

    # The hook answers 200 now: each order reaches it once more, and the lookup shows the replay's success.
    def resent() -> list[str] | None:
        texts = [r.body.decode(errors="replace") for r in hooks.requests_to(HOOK_PATH)[before:]]
        return texts if all(any(o in t for t in texts) for o in REPLAY_ORDER_IDS) else None

    _until(resent, within=60, what="the two replays reached the hook")
    for order_id in REPLAY_ORDER_IDS:

        def replay_succeeded(order_id: str = order_id) -> bool:
            order = suite.order(order_id)
            zapier = [d for d in (order or {}).get("deliveries", []) if d["integration"] == "demo-zapier"]
            return sorted(d["status"] for d in zapier) == ["failed", "succeeded"]

        _until(replay_succeeded, within=30, what=f"{order_id}: the failure and the replay's success in the lookup")
    sent = len(hooks.requests_to(HOOK_PATH))
    assert sent == before + 2

    # Replaying again, from the CLI, finds nothing left and sends nothing: once per delivery.
    counted = _replay_cli(suite, "--dry-run")
    assert counted.exit_code == 0, counted.output
    assert "0 deliveries of demo-zapier failed for good" in counted.output
    again = _replay_cli(suite, "--yes")
    assert again.exit_code == 0, again.output
    assert "Nothing to replay." in again.output
    assert len(hooks.requests_to(HOOK_PATH)) == sent, "replaying twice sends once per delivery"


# --- pause and resume against the real suite ---------------------------------------------------------------------

PAUSE_ORDER_ID = f"pause-order-{RUN}"


def _zapier_of(order: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [d for d in (order or {}).get("deliveries", []) if d["integration"] == "demo-zapier"]


def test_a_paused_integration_holds_its_deliveries_until_resumed_from_the_console(page: Page) -> None:
    suite, hooks = page.suite, page.suite.stack.hooks
    page.sign_in()
    page.visible("#search-value")
    page.driver.find_element(By.LINK_TEXT, "Integrations").click()
    card = page.visible('li[data-integration="demo-zapier"]')
    try:
        card.find_element(By.CSS_SELECTOR, "button[data-action=pause]").click()
        reason = page.visible('li[data-integration="demo-zapier"] input[name=reason]')
        reason.send_keys(f"console test {RUN}", Keys.ENTER)
        # The 202, then the overview shows it once the association store has read the change.
        paused = page.visible('li[data-integration="demo-zapier"][data-state="paused"]', within=20)
        assert paused.find_element(By.CSS_SELECTOR, ".badge.paused").text == "Paused"
        assert f"console test {RUN}" in paused.find_element(By.CSS_SELECTOR, ".paused-line").text
        before = len(hooks.requests_to(HOOK_PATH))

        # The deliverer's own view, not only the store's: it logs each change it applies from the control topic.
        def deliverer_read_the_pause() -> bool:
            log = suite.stack.log_path.read_text(errors="replace") if suite.stack.log_path else ""
            return any(
                line.lstrip().startswith("deliver-zapier |") and "integration demo/demo-zapier paused" in line
                for line in log.splitlines()
            )

        _until(deliverer_read_the_pause, within=20, what="deliver-zapier read the pause")

        line = {"recipeId": RECIPE_ID, "orderNumber": f"P-{RUN}", "orderId": PAUSE_ORDER_ID, "itemId": "1"}
        status, body = suite.request("POST", "/api/v2/recipe/order", [{**line, "itemQuantity": 1}])
        assert status == 202, body

        def others_succeeded() -> dict[str, Any] | None:
            order = suite.order(PAUSE_ORDER_ID)
            others = [d for d in (order or {}).get("deliveries", []) if d["integration"] != "demo-zapier"]
            done = others and all(d["status"] == "succeeded" for d in others) and _zapier_of(order)
            return order if done else None

        try:
            order = _until(others_succeeded, within=90, what="the order's other integrations succeeded")
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- stack log:\n{suite.log_tail()}") from None
        # Held: neither attempted nor failed, and nothing reached the hook for this order; the lookup says why.
        assert [(d["status"], d["attempts"]) for d in _zapier_of(order)] == [("pending", 0)]
        assert [(d["held"], d["heldCause"]) for d in _zapier_of(order)] == [(True, "operator")]
        texts = [r.body.decode(errors="replace") for r in hooks.requests_to(HOOK_PATH)[before:]]
        assert not any(PAUSE_ORDER_ID in text for text in texts)

        # Review Recent Orders: the held delivery's status has a "Held" badge saying why; the others none.
        page.driver.find_element(By.LINK_TEXT, "Review Recent Orders").click()
        row = page.card(PAUSE_ORDER_ID).find_element(By.CSS_SELECTOR, 'tr[data-integration="demo-zapier"]')
        held = row.find_element(By.CSS_SELECTOR, '[data-field="held"][data-cause="operator"]')
        assert held.find_element(By.CSS_SELECTOR, ".badge.held").text == "Held"
        assert "integration paused — not attempted until resumed" in held.text
        assert len(page.card(PAUSE_ORDER_ID).find_elements(By.CSS_SELECTOR, ".badge.held")) == 1
        page.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
        page.browser.shot("held-delivery-in-recent-orders")

        page.driver.find_element(By.LINK_TEXT, "Integrations").click()
        paused = page.visible('li[data-integration="demo-zapier"][data-state="paused"]')
        paused.find_element(By.CSS_SELECTOR, "button[data-action=resume]").click()
        active = page.visible('li[data-integration="demo-zapier"][data-state="active"]', within=20)
        assert not active.find_elements(By.CSS_SELECTOR, ".badge.paused")
    finally:
        # Never leave the demo hook paused for whatever runs next on this stack (a no-op when resumed above).
        suite.request("POST", "/api/v2/integrations/demo-zapier/resume")

    def delivered() -> bool:
        texts = [r.body.decode(errors="replace") for r in hooks.requests_to(HOOK_PATH)[before:]]
        return any(PAUSE_ORDER_ID in text for text in texts)

    _until(delivered, within=60, what="the held order reached the hook after the resume")

    def succeeded() -> bool:
        return [d["status"] for d in _zapier_of(suite.order(PAUSE_ORDER_ID))] == ["succeeded"]

    _until(succeeded, within=30, what="demo-zapier succeeded in the lookup")


# --- destination health: an integration paused by the health rules ----------------------------------------------


def test_an_unhealthy_pause_shows_its_own_badge_and_reason_and_the_keyboard_resumes_it(page: Page) -> None:
    suite, integration = page.suite, "demo-azure"
    reason = f"5 consecutive failed attempts; last: TransientError: connection refused {RUN}"
    # What the retry service publishes after N failed attempts; sent here directly, no destination has to fail.
    unhealthy = IntegrationStateChanged(
        event_id=f"console-unhealthy-{RUN}",
        tenant="demo",
        integration_id=integration,
        state="paused",
        reason=reason,
        changed_by="destination-health",
        changed_at=datetime.now(UTC),
        cause="unhealthy",
    )
    try:
        suite.publish(INTEGRATIONS_CONTROL, unhealthy, key=unhealthy.kafka_key)

        def shown_unhealthy() -> bool:
            status, body = suite.request("GET", "/api/v2/integrations")
            found = [i for i in body["integrations"] if i["id"] == integration] if status == 200 else []
            return bool(found) and (found[0]["state"], found[0]["stateCause"]) == ("paused", "unhealthy")

        _until(shown_unhealthy, within=20, what="the overview shows the unhealthy pause")
        # Narrow: a phone-sized window, where the long badge must wrap inside the card.
        page.driver.set_window_size(400, 900)
        page.sign_in()
        page.visible("#search-value")
        page.driver.find_element(By.LINK_TEXT, "Integrations").click()
        card = page.visible(f'li[data-integration="{integration}"][data-cause="unhealthy"]')
        badge = card.find_element(By.CSS_SELECTOR, ".badge.unhealthy")
        assert badge.text == "Unhealthy — deliveries held"
        # Not the operator's "Paused", and no health from counts: held deliveries are not attempted.
        assert not card.find_elements(By.CSS_SELECTOR, ".badge.paused, .badge.healthy, .badge.degraded")
        line = card.find_element(By.CSS_SELECTOR, ".paused-line").text
        assert reason in line
        assert card.find_element(By.CSS_SELECTOR, ".paused-line time").get_attribute("datetime")
        card_box, badge_box = card.rect, badge.rect
        assert badge_box["x"] + badge_box["width"] <= card_box["x"] + card_box["width"]
        assert page.driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        page.driver.execute_script("arguments[0].scrollIntoView()", card)
        page.browser.shot("unhealthy-integration-narrow")

        resume = card.find_element(By.CSS_SELECTOR, "button[data-action=resume]")
        page.driver.execute_script("arguments[0].focus()", resume)
        page.driver.switch_to.active_element.send_keys(Keys.ENTER)
        active = page.visible(f'li[data-integration="{integration}"][data-state="active"]', within=20)
        assert active.get_attribute("data-cause") == "operator"
        assert not active.find_elements(By.CSS_SELECTOR, ".badge.unhealthy")
    finally:
        # Never leave the demo destination held for whatever runs next on this stack (a no-op when resumed above).
        suite.request("POST", f"/api/v2/integrations/{integration}/resume")
