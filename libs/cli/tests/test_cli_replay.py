"""``relay replay`` against a stub of ``POST /api/v2/deliveries/replay`` that keeps the contract: a dry-run count,
batches paged with ``next``, replayed deliveries no longer matching, 429/503 with ``Retry-After``, 400 problems.

The loop's waits are asserted as computed (sleep and clock injected), never as wall time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from typer.testing import CliRunner, Result

from relay_cli import replay as bulk
from relay_cli.main import app
from relay_devservers.processes import free_port

SECRET_KEY = "sk-replay-do-not-print-0123456789"
SINCE = "2026-12-01T10:00:00Z"


def _failed(n: int, integration: str) -> dict[str, Any]:
    return {
        "deliveryId": f"d{n}",
        "integration": integration,
        "orderId": f"order-{n}",
        "orderNumber": str(1000 + n),
        "recipeId": "999-StandIn",
        "lastChange": f"2026-12-01T11:{60 - n:02d}:00Z",  # d1 newest
    }


@dataclass
class ReplayStub:
    """The endpoint from memory: ``failed`` newest first; ``refusals`` answer the next real calls first."""

    url: str = ""
    failed: list[dict[str, Any]] = field(default_factory=list)
    replayed: set[str] = field(default_factory=set)
    sent: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    integrations: tuple[str, ...] = ("demo-sftp", "demo-s3")

    def matching(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        since = datetime.fromisoformat(body["since"])
        until = datetime.fromisoformat(body["until"]) if body.get("until") else None
        return [
            d
            for d in self.failed
            if d["deliveryId"] not in self.replayed
            and body.get("integrationId") in (None, d["integration"])
            and datetime.fromisoformat(d["lastChange"]) >= since
            and (until is None or datetime.fromisoformat(d["lastChange"]) <= until)
        ]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"authorization": request.headers.get("Authorization"), "body": body})
        problems = []
        try:
            if datetime.fromisoformat(body.get("since", "")).tzinfo is None:
                raise ValueError
        except ValueError:
            problems.append({"pointer": "/since", "message": "must be an RFC 3339 instant with an offset"})
        if body.get("integrationId") not in (None, *self.integrations):
            problems.append({"pointer": "/integrationId", "message": "not one of this tenant's integrations"})
        if problems:
            body_ = {"error": "invalid_fields", "message": f"{len(problems)} invalid field(s)", "problems": problems}
            return web.json_response(body_, status=400)
        matching = self.matching(body)
        if body.get("dryRun"):
            answer = {"dryRun": True, "matched": len(matching), "replayed": 0, "deliveries": [], "next": None}
            return web.json_response(answer)
        if self.refusals:
            status, error, headers = self.refusals.pop(0)
            return web.json_response(error, status=status, headers=headers)
        if body.get("after"):
            # The cursor is the last delivery answered: the batch goes on with the older ones.
            position = next(i for i, d in enumerate(self.failed) if d["deliveryId"] == body["after"])
            older = {d["deliveryId"] for d in self.failed[position + 1 :]}
            matching = [d for d in matching if d["deliveryId"] in older]
        batch = matching[: body.get("limit", 25)]
        for d in batch:
            self.replayed.add(d["deliveryId"])
            self.sent.append(d["deliveryId"])
        rest = len(matching) > len(batch)
        answer = {
            "dryRun": False,
            "matched": len(self.matching(body | {"after": None})) + len(batch),
            "replayed": len(batch),
            "deliveries": [
                {k: d[k] for k in ("deliveryId", "integration", "orderId", "orderNumber", "recipeId")}
                | {"replayTriggerId": f"r-{d['deliveryId']}"}
                for d in batch
            ],
            "next": batch[-1]["deliveryId"] if rest and batch else None,
        }
        return web.json_response(answer, status=202)


@pytest.fixture
async def stub() -> AsyncIterator[ReplayStub]:
    stub_ = ReplayStub(failed=[_failed(n, "demo-sftp" if n % 2 else "demo-s3") for n in range(1, 6)])
    app_ = web.Application()
    app_.router.add_post(bulk.REPLAY_PATH, stub_.handle)
    runner = web.AppRunner(app_)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    stub_.url = f"http://{host}:{port}"
    yield stub_
    await runner.cleanup()


@dataclass
class FakeTime:
    """Injected sleep and clock: the waits are recorded, and no time passes during a call."""

    waits: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def clock(self) -> float:
        return 100.0


async def _relay(args: Sequence[str], env: dict[str, str] | None = None) -> Result:
    # The command runs its own event loop (asyncio.run), so it runs in a thread beside the stub's loop.
    def invoke() -> Result:
        return CliRunner().invoke(app, list(args), env=env)

    return await asyncio.to_thread(invoke)


def _env(stub: ReplayStub) -> dict[str, str]:
    return {"RELAY_API_URL": stub.url, "RELAY_API_KEY": SECRET_KEY}


def _real_bodies(stub: ReplayStub) -> list[dict[str, Any]]:
    return [r["body"] for r in stub.requests if not r["body"]["dryRun"]]


async def test_dry_run_counts_with_a_relative_window_and_replays_nothing(stub: ReplayStub) -> None:
    before = datetime.now(UTC)
    # The stub's failures are from 2026-12-01: a window reaching back far enough from any "now" of this test suite.
    result = await _relay(["replay", "--since", "3650d", "--integration", "demo-sftp", "--dry-run"], env=_env(stub))
    assert result.exit_code == 0, result.output
    (request,) = stub.requests
    assert request["authorization"] == f"Bearer {SECRET_KEY}"
    body = request["body"]
    assert body["dryRun"] is True
    assert body["integrationId"] == "demo-sftp"
    assert body["status"] == "failed"
    assert body["since"].endswith("Z"), "sent as UTC"
    # Converted with the local clock: that long before the command ran (to the second).
    since = datetime.fromisoformat(body["since"])
    assert before - timedelta(days=3650, seconds=1) <= since <= datetime.now(UTC) - timedelta(days=3650)
    assert f"3 deliveries of demo-sftp failed for good between {body['since']} and now and were not replayed" in (
        result.output
    )
    assert stub.sent == []
    assert SECRET_KEY not in result.output


async def test_batches_follow_next_paced_by_the_rate_and_end_with_a_summary(stub: ReplayStub) -> None:
    time = FakeTime()
    seen: list[tuple[int, int]] = []
    selection = bulk.Selection(since=SINCE)
    async with bulk.ReplayClient(stub.url, SECRET_KEY, sleep=time.sleep) as client:
        assert await bulk.count(client, selection) == 5
        done = await bulk.replay_batches(
            client,
            selection,
            rate=5,
            batch_size=2,
            clock=time.clock,
            on_batch=lambda batch, so_far: seen.append((batch.replayed, so_far.replayed)),
        )
    assert [b.get("after") for b in _real_bodies(stub)] == [None, "d2", "d4"]
    assert all(b["limit"] == 2 for b in _real_bodies(stub))
    assert seen == [(2, 2), (2, 4), (1, 5)]
    # Two deliveries at 5 a second cost 0.4 s each batch; nothing is waited after the last one.
    assert time.waits == [pytest.approx(0.4), pytest.approx(0.4)]
    assert stub.sent == ["d1", "d2", "d3", "d4", "d5"]
    assert done.replayed == 5
    assert done.batches == 3
    assert not done.stopped
    assert done.per_integration() == [("demo-sftp", 3), ("demo-s3", 2)]
    assert done.text(first=3).splitlines() == [
        "5 deliveries replayed in 3 batch(es)",
        "  demo-sftp: 3",
        "  demo-s3: 2",
        "first delivery IDs: d1, d2, d3 (and 2 more)",
    ]


def test_the_pacing_wait_counts_the_time_the_batch_took() -> None:
    assert bulk.pacing_wait(25, 5, elapsed=0.0) == 5.0
    assert bulk.pacing_wait(25, 5, elapsed=1.5) == 3.5
    assert bulk.pacing_wait(25, 100, elapsed=1.0) == 0.0
    assert bulk.pacing_wait(0, 5, elapsed=0.0) == 0.0


async def test_a_429_is_waited_out_for_its_retry_after_then_the_same_batch_is_sent(stub: ReplayStub) -> None:
    time = FakeTime()
    waited: list[str] = []
    budget = {"error": "too_many_requests", "message": "the tenant's trigger budget is spent"}
    stub.refusals = [(429, budget, {"Retry-After": "1"})]
    client = bulk.ReplayClient(stub.url, SECRET_KEY, sleep=time.sleep, on_wait=lambda s, why: waited.append(why))
    async with client:
        done = await bulk.replay_batches(client, bulk.Selection(since=SINCE), rate=1000, batch_size=3, clock=time.clock)
    first, retried, second = _real_bodies(stub)
    assert first == retried, "the same batch again"
    assert second["after"] == "d3"
    assert time.waits[0] == 1.0
    assert waited == ["HTTP 429 (retry 1 of 5)"]
    assert done.replayed == 5
    assert stub.sent == ["d1", "d2", "d3", "d4", "d5"]


async def test_a_503_is_retried_boundedly_and_the_error_says_what_was_done(stub: ReplayStub) -> None:
    time = FakeTime()
    down = {"error": "unavailable", "message": "the association store does not answer"}
    async with bulk.ReplayClient(stub.url, SECRET_KEY, sleep=time.sleep, max_retries=2) as client:
        # One 503 after the first batch: retried, then the rest goes through.
        stub.refusals = [(503, down, {"Retry-After": "2"})]
        done = await bulk.replay_batches(client, bulk.Selection(since=SINCE), rate=1000, batch_size=4, clock=time.clock)
        assert done.replayed == 5
        assert 2.0 in time.waits
        # 503 on every call now: two retries (one without Retry-After: the fallback), then an error naming the count.
        stub.failed.append(_failed(6, "demo-sftp") | {"lastChange": "2026-12-01T10:30:00Z"})
        stub.refusals = [(503, down, {"Retry-After": "2"}), (503, down, {}), (503, down, {"Retry-After": "2"})]
        time.waits.clear()
        with pytest.raises(bulk.ReplayFailedError) as failure:
            await bulk.replay_batches(client, bulk.Selection(since=SINCE), rate=1000, clock=time.clock)
    assert "HTTP 503 unavailable: the association store does not answer; retry after 2 s" in str(failure.value)
    assert "gave up after 2 retries" in str(failure.value)
    assert time.waits == [2.0, bulk.FALLBACK_RETRY_S * 2]
    assert failure.value.done.replayed == 0


async def test_a_400_is_shown_with_its_pointer(stub: ReplayStub) -> None:
    result = await _relay(["replay", "--since", "2h", "--integration", "other-tenants", "--yes"], env=_env(stub))
    assert result.exit_code == 1
    assert (
        "HTTP 400 invalid_fields: 1 invalid field(s) (/integrationId: not one of this tenant's integrations)"
        in result.output
    )
    assert stub.sent == []
    assert SECRET_KEY not in result.output


async def test_without_yes_and_without_a_terminal_nothing_is_replayed(stub: ReplayStub) -> None:
    result = await _relay(["replay", "--since", SINCE], env=_env(stub))
    assert result.exit_code == 2
    assert "5 deliveries of all integrations failed for good" in result.output
    assert "add --yes" in result.output
    assert len(stub.requests) == 1
    assert stub.sent == []


async def test_yes_replays_everything_with_a_summary_and_a_second_run_sends_nothing(stub: ReplayStub) -> None:
    args = ["replay", "--since", SINCE, "--until", "2026-12-01T13:00:00+01:00", "--rate", "1000", "--batch", "2"]
    result = await _relay([*args, "--yes"], env=_env(stub))
    assert result.exit_code == 0, result.output
    assert _real_bodies(stub)[0]["until"] == "2026-12-01T12:00:00Z", "sent as UTC"
    assert "5 deliveries replayed in 3 batch(es)" in result.output
    assert "  demo-sftp: 3" in result.output
    assert "  demo-s3: 2" in result.output
    assert "first delivery IDs: d1, d2, d3, d4, d5" in result.output
    again = await _relay([*args, "--yes"], env=_env(stub))
    assert again.exit_code == 0
    assert "0 deliveries of all integrations failed for good" in again.output
    assert "Nothing to replay." in again.output
    assert stub.sent == ["d1", "d2", "d3", "d4", "d5"], "replaying twice sends once per delivery"


async def test_a_stop_asked_for_ends_the_run_after_the_current_batch(stub: ReplayStub) -> None:
    time = FakeTime()
    async with bulk.ReplayClient(stub.url, SECRET_KEY, sleep=time.sleep) as client:
        done = await bulk.replay_batches(
            client, bulk.Selection(since=SINCE), batch_size=2, clock=time.clock, stop=lambda: True
        )
    assert done.stopped
    assert done.batches == 1
    assert done.replayed == 2
    assert stub.sent == ["d1", "d2"]
    assert "2 deliveries replayed in 1 batch(es) (stopped)" in done.text()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--since", "2x"], "--since"),
        (["--since", "2026-12-01T10:00:00"], "--since"),  # no offset: ambiguous
        (["--since", "\uff12h"], "--since"),  # a fullwidth digit two
        (["--since", "2h", "--rate", "0"], "--rate"),
        (["--since", "2h", "--batch", "101"], "--batch"),
        (["--since", "2h", "--batch", "0"], "--batch"),
        (["--since", "1h", "--until", "2h"], "--until"),
        (["--since", "2h", "--status", "retrying"], "--status"),
        (["--since", "99999999999d"], "--since"),  # past any date: said, not an OverflowError
        (["--since", "800000d"], "--since"),
        (["--since", "0001-01-01T00:00:00+14:00"], "--since"),  # no UTC form in year 1
        (["--since", "2h", "--until", "9999-12-31T23:59:59-10:00"], "--until"),
    ],
)
async def test_bad_values_are_usage_errors_naming_the_option(stub: ReplayStub, args: list[str], option: str) -> None:
    result = await _relay(["replay", *args, "--dry-run"], env=_env(stub))
    assert result.exit_code == 2, result.output
    assert f"'{option}'" in result.output
    assert stub.requests == []


def test_instants_relative_and_absolute() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert bulk.rfc3339(bulk.parse_instant("1h30m", now)) == "2026-12-01T10:30:00Z"
    assert bulk.rfc3339(bulk.parse_instant("30m", now)) == "2026-12-01T11:30:00Z"
    assert bulk.rfc3339(bulk.parse_instant("2026-12-01T08:00:00.250-02:00", now)) == "2026-12-01T10:00:00.250Z"
    for bad in ("", "2026-12-01", "h", "1.5h", "soon"):
        with pytest.raises(ValueError, match="RFC 3339"):
            bulk.parse_instant(bad, now)


async def test_an_unreachable_api_says_so_without_the_key() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = await _relay(["replay", "--since", "2h", "--yes"], env={"RELAY_API_URL": url, "RELAY_API_KEY": SECRET_KEY})
    assert result.exit_code == 1
    assert f"cannot reach the API at {url}" in result.output
    assert SECRET_KEY not in result.output


def test_skipped_deliveries_are_counted_in_the_summary() -> None:
    answer = {"dryRun": False, "matched": 3, "replayed": 0, "skipped": 2, "deliveries": [], "next": None}
    batch = bulk.parse_batch(answer)
    assert batch.skipped == 2
    done = bulk.ReplaySummary(batches=1, skipped=batch.skipped)
    assert done.text().splitlines() == [
        "0 deliveries replayed in 1 batch(es)",
        "2 skipped: their integration is no longer configured or enabled",
    ]
    with pytest.raises(bulk.ReplayFailedError, match="unreadable replay result"):
        bulk.parse_batch(answer | {"matched": -1})
