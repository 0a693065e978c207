"""`make run`'s stack (``relay dev``) brought up as a user would, driven through the README walk-through."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import mailbox
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import botocore.session
import pytest
from azure.storage.blob import BlobServiceClient

from relay_devservers.azurite import AzuriteBlob
from relay_devservers.processes import free_port, wait_until
from relay_testing.files import read_tree

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PII = ("Jane Q. Customer", "jane.customer@example.com", "4111 1111 1111 1111", "221B Baker Street")
RECIPE_ID = "999-63CHGJokGoxPfSba"


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    api: str
    var: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    var = tmp_path_factory.mktemp("var")
    log = var / "relay-dev.out"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"KAFKA_BOOTSTRAP_SERVERS", "OTEL_EXPORTER_OTLP_ENDPOINT"}}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "relay_cli", "dev", "--port", str(port), "--var", str(var)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = RunningStack(process, f"http://127.0.0.1:{port}", var, log)
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"relay dev exited early:\n{running.output()[-4000:]}")
            return "Recipe Relay is up" in running.output()

        wait_until(up, timeout=120, what="relay dev to report the suite is up", interval=0.2)
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


async def _orders(http: aiohttp.ClientSession, api: str, **query: str) -> list[dict[str, Any]]:
    async with http.get(f"{api}/api/v2/orders", params=query, headers={"Authorization": "Bearer demo-key"}) as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
        orders: list[dict[str, Any]] = body["orders"]
        return orders


async def _eventually(check: Any, *, within: float = 60.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s; last result {result!r}")
        await asyncio.sleep(0.2)


async def test_readme_walkthrough_delivers_to_every_demo_destination(
    stack: RunningStack, http: aiohttp.ClientSession
) -> None:
    api = stack.api
    recipe = {
        "id": RECIPE_ID,
        "created": "2026-11-20T10:00:00Z",
        "name": "Engraved Mug",
        "styleCode": "MUG-11",
        "components": [{"name": "Front", "code": "front", "component": {"code": "engraving", "sku": "ENG-1"}}],
    }
    async with http.post(f"{api}/api/v2/recipes", json=recipe, headers={"Authorization": "Bearer demo-key"}) as r:
        assert r.status == 201, await r.text()
        saved = await r.json()
    assert saved["id"] == RECIPE_ID
    assert saved["url"].endswith(f"/recipe/{RECIPE_ID}.json")

    async with http.get(f"{api}/recipe/{RECIPE_ID}.json") as r:
        assert r.status == 200
        assert (await r.json())["name"] == "Engraved Mug"

    association = [
        {
            "recipeId": RECIPE_ID,
            "orderNumber": "1022",
            "orderId": "6182665224482",
            "itemId": "2222222222222",
            "itemQuantity": 2,
            "customerName": PII[0],
            "email": PII[1],
            "card": PII[2],
            "shippingAddress": PII[3],
        }
    ]
    async with http.post(f"{api}/api/v2/recipe/order", params={"apikey": "demo-key"}, json=association) as r:
        assert r.status == 202, await r.text()
        assert await r.json() == {"accepted": 1, "droppedFields": 4}

    async def linked_and_delivered() -> list[dict[str, Any]] | None:
        orders = await _orders(http, api, orderNumber="1022")
        if not orders:
            return None
        done = [d for d in orders[0]["deliveries"] if d["trigger"] == "order_linked" and d["status"] == "succeeded"]
        failed = [d for d in orders[0]["deliveries"] if d["status"] == "failed"]
        assert not failed, f"deliveries failed: {failed}"
        return orders if len(done) == len(DESTINATIONS) else None

    orders = await _eventually(linked_and_delivered, within=180)
    assert orders[0]["orderId"] == "6182665224482"
    assert orders[0]["items"] == [{"recipeId": RECIPE_ID, "itemId": "2222222222222", "itemQuantity": 2}]
    assert {d["type"] for d in orders[0]["deliveries"]} == set(DESTINATIONS)

    bundle = _order_bundle(stack.var)
    assert f"{ORDER_PREFIX}Ticket.pdf" in bundle
    assert f"{ORDER_PREFIX}Recipe.json" in bundle
    _assert_email_delivered(stack.var, bundle)
    _assert_sftp_delivered(stack.var, bundle)
    _assert_s3_delivered(stack.var, bundle)
    _assert_azure_delivered(stack.var, bundle)
    await _assert_zapier_delivered(stack.var, bundle, http)

    update = [
        {
            "type": "updated",
            "orderId": "6182665224482",
            "orderNumber": "1022",
            "occurredAt": "2099-01-01T00:00:00Z",
            "items": [{"recipeId": RECIPE_ID, "itemId": "2222222222222", "itemQuantity": 3}],
        }
    ]
    async with http.post(f"{api}/api/v2/orders/events", json=update, headers={"Authorization": "Bearer demo-key"}) as r:
        assert r.status == 202, await r.text()

    async def updated() -> bool:
        found = await _orders(http, api, recipeId=RECIPE_ID)
        return bool(found) and found[0]["items"][0]["itemQuantity"] == 3

    await _eventually(updated)

    # No PII anywhere the suite keeps or prints: the data directory (database, objects, demo destinations, logs).
    for path, data in read_tree(stack.var).items():
        for text in PII:
            assert text.encode() not in data, f"{text!r} found in {path}"


DESTINATIONS = ("email", "sftp", "s3", "azure-blob", "zapier")
ORDER_PREFIX = f"1022_ID_6182665224482_R_{RECIPE_ID}_"


def _order_bundle(var: Path) -> dict[str, bytes]:
    """The order's bundle as the bundle-builder stored it (the artifact store is a directory in make run)."""
    files = [p for p in (var / "objects").rglob(f"{ORDER_PREFIX}*") if p.is_file()]
    return {p.name: p.read_bytes() for p in files}


def _demo_secrets(var: Path) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((var / "dev" / "demo-secrets.json").read_text())
    return loaded


def _assert_email_delivered(var: Path, bundle: dict[str, bytes]) -> None:
    box = mailbox.Maildir(var / "dev" / "mail", create=False)
    messages = [m for m in box if "factory@demo.example" in str(m["To"])]
    assert messages, "no e-mail reached factory@demo.example"
    message = email.message_from_bytes(bytes(messages[0]), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert "1022" in str(message["Subject"])
    attachments = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    assert attachments == bundle


def _assert_sftp_delivered(var: Path, bundle: dict[str, bytes]) -> None:
    landed = {p.name: p.read_bytes() for p in (var / "dev" / "sftp").rglob("*") if p.is_file()}
    assert {name: landed.get(name) for name in bundle} == bundle
    assert not [name for name in landed if name.startswith(".") or name.endswith(".part")], "temporary files left"


def _assert_s3_delivered(var: Path, bundle: dict[str, bytes]) -> None:
    made = _demo_secrets(var)
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url="http://127.0.0.1:17333",
        region_name="us-east-1",
        aws_access_key_id=made["s3_access_key"],
        aws_secret_access_key=made["s3_secret_key"],
    )
    for name, data in bundle.items():
        body = client.get_object(Bucket="demo-orders", Key=f"relay/{name}")["Body"].read()
        assert body == data, name
    # The raw recipe feed (on save) travels independently of the order feed: it may land a little later.
    wait_until(
        lambda: client.list_objects_v2(Bucket="demo-orders", Prefix=f"relay/{RECIPE_ID}-").get("KeyCount", 0) > 0,
        timeout=60,
        what="the raw recipe feed to reach S3",
        interval=0.2,
    )


def _assert_azure_delivered(var: Path, bundle: dict[str, bytes]) -> None:
    azurite = AzuriteBlob(var / "dev", port=17000)
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = service.get_container_client("demo-orders")
        for name, data in bundle.items():
            assert container.download_blob(name).readall() == data, name


async def _assert_zapier_delivered(var: Path, bundle: dict[str, bytes], http: aiohttp.ClientSession) -> None:
    records = [json.loads(p.read_text()) for p in sorted((var / "dev" / "hooks").glob("*.json"))]
    payloads = [r["body"] for r in records if r["body"].get("orderNumber") == "1022"]
    assert payloads, "the Zapier hook received nothing for order 1022"
    payload = payloads[0]
    assert payload["orderId"] == "6182665224482"
    assert {f["name"] for f in payload["files"]} == set(bundle)
    for file in payload["files"]:
        async with http.get(file["url"]) as r:
            assert r.status == 200, file["name"]
            assert await r.read() == bundle[file["name"]]


def test_a_crashed_service_is_restarted(stack: RunningStack) -> None:
    [first] = [int(pid) for pid in re.findall(r"started deliver-zapier \(pid (\d+)\)", stack.output())]
    os.killpg(first, signal.SIGKILL)

    def restarted() -> bool:
        pids = [int(pid) for pid in re.findall(r"started deliver-zapier \(pid (\d+)\)", stack.output())]
        return len(pids) == 2 and _alive(pids[1])

    wait_until(restarted, timeout=30, what="relay dev to restart deliver-zapier", interval=0.2)
    assert "deliver-zapier exited with code -9; restarting it" in stack.output()


def test_ctrl_c_stops_every_process(stack: RunningStack) -> None:
    pids = [int(m) for m in re.findall(r"started [\w-]+ \(pid (\d+)\)", stack.output())]
    pids = [pid for pid in pids if _alive(pid)]
    assert len(pids) >= 3, "expected the broker and at least two services to have been started"
    assert all(_alive(pid) for pid in pids)
    os.killpg(stack.process.pid, signal.SIGINT)
    assert stack.process.wait(timeout=60) == 0
    wait_until(lambda: not any(_alive(pid) for pid in pids), timeout=30, what="every process of the stack to exit")
    assert stack.output().rstrip().endswith("stopped")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
