"""``relay sync associations`` against an in-process stub of both batch endpoints that keeps their contract:
``accepted`` counts, dedupe by business keys, 400 problems by JSON pointer, 429/503 with ``Retry-After``.

The run's waits are asserted as computed (sleep and clock injected), never as wall time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from typer.testing import CliRunner, Result

from relay_cli import sync
from relay_cli.main import app
from relay_devservers.processes import free_port

SECRET_KEY = "sk-sync-do-not-print-0123456789"
PII = ("Jane Q. Customer", "jane.customer@example.com", "+44 20 7946 0958", "221B Baker Street")
SERVER_MAX_QUANTITY = 500
"""A rule only the stub knows (the CLI's local check lets it through), to draw a 400 with pointers."""


@dataclass
class BatchStub:
    """Both endpoints from memory. ``accepted`` holds each accepted row's order number, in order (a resend of a
    row already accepted is deduped, as the API's stable event IDs do); ``refusals`` answer the next calls."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    refusals: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    fail_call: int | None = None
    """Answer 500 to this call (1-based), once."""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.raw.append(raw)
        body = json.loads(raw)
        self.requests.append(
            {"path": request.path, "authorization": request.headers.get("Authorization"), "body": body}
        )
        if self.fail_call == len(self.requests):
            self.fail_call = None
            return web.json_response({"error": "internal", "message": "boom"}, status=500)
        if self.refusals:
            status, error, headers = self.refusals.pop(0)
            return web.json_response(error, status=status, headers=headers)
        problems = [
            {"pointer": f"/{i}/itemQuantity", "message": f"must be at most {SERVER_MAX_QUANTITY}"}
            for i, row in enumerate(body)
            if row.get("itemQuantity", 0) > SERVER_MAX_QUANTITY
        ]
        if problems:
            error = {"error": "invalid_fields", "message": f"{len(problems)} invalid field(s)", "problems": problems}
            return web.json_response(error, status=400)
        for row in body:
            key = json.dumps(row, sort_keys=True)
            if key not in self.seen:
                self.seen.add(key)
                self.accepted.append(row["orderNumber"])
        return web.json_response({"accepted": len(body), "droppedFields": 0}, status=202)

    def calls(self) -> list[tuple[str, list[str]]]:
        """Each call: which endpoint and the order numbers sent, in order."""
        kind = {sync.ASSOCIATIONS_PATH: "association", sync.EVENTS_PATH: "event"}
        return [(kind[r["path"]], [row["orderNumber"] for row in r["body"]]) for r in self.requests]


@pytest.fixture
async def stub() -> AsyncIterator[BatchStub]:
    stub_ = BatchStub()
    app_ = web.Application()
    app_.router.add_post(sync.ASSOCIATIONS_PATH, stub_.handle)
    app_.router.add_post(sync.EVENTS_PATH, stub_.handle)
    runner = web.AppRunner(app_)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    stub_.url = f"http://{host}:{port}"
    yield stub_
    await runner.cleanup()


@dataclass
class FakeTime:
    waits: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def clock(self) -> float:
        return 100.0


def association(number: int, quantity: int = 1) -> dict[str, Any]:
    return {"recipeId": "999-SyncMug", "orderNumber": f"N{number}", "itemId": f"i{number}", "itemQuantity": quantity}


def event(number: int, kind: str = "cancelled") -> dict[str, Any]:
    return {"type": kind, "orderId": f"N{number}", "orderNumber": f"N{number}", "occurredAt": "2025-01-31T12:00:00Z"}


def jsonl(path: Path, lines: Sequence[object]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def csv_file(path: Path, rows: Sequence[Sequence[object]]) -> Path:
    header = "recipeId,customerName,orderNumber,orderId,itemId,itemQuantity,customerEmail,phone,address\n"
    path.write_text(header + "".join(",".join(f'"{cell}"' for cell in row) + "\n" for row in rows))
    return path


async def _relay(args: Sequence[str], env: dict[str, str] | None = None) -> Result:
    # The command runs its own event loop (asyncio.run), so it runs in a thread beside the stub's loop.
    def invoke() -> Result:
        return CliRunner().invoke(app, list(args), env=env)

    return await asyncio.to_thread(invoke)


def _env(stub: BatchStub) -> dict[str, str]:
    return {"RELAY_API_URL": stub.url, "RELAY_API_KEY": SECRET_KEY}


async def _run(stub: BatchStub, path: Path, time: FakeTime, **options: Any) -> sync.SyncSummary:
    source = sync.load_source(path, sync.detect_format(path, None))
    async with sync.SyncClient(stub.url, SECRET_KEY, sleep=time.sleep) as client:
        return await sync.run_sync(client, source, sync.Options(**options), clock=time.clock)


async def test_batches_go_in_file_order_one_kind_each(stub: BatchStub, tmp_path: Path) -> None:
    lines: list[object] = [association(1), association(2), association(3), event(1), "", association(4)]
    lines += [event(2, "refunded"), event(3, "returned"), association(5)]
    path = jsonl(tmp_path / "orders.jsonl", lines)
    summary = await _run(stub, path, FakeTime(), batch=2)
    assert stub.calls() == [
        ("association", ["N1", "N2"]),
        ("association", ["N3"]),
        ("event", ["N1"]),
        ("association", ["N4"]),
        ("event", ["N2", "N3"]),
        ("association", ["N5"]),
    ]
    assert {r["authorization"] for r in stub.requests} == {f"Bearer {SECRET_KEY}"}
    assert (summary.sent, summary.accepted, summary.rejected, summary.batches) == (8, 8, 0, 6)
    state = json.loads((tmp_path / "orders.jsonl.relay-sync.json").read_text())
    assert state["completed"] is True
    assert state["linesDone"] == 9
    assert state["sha256"] == sync.load_source(path, "jsonl").sha256
    assert state["size"] == path.stat().st_size


async def test_bad_lines_are_rejected_locally_by_line_number_and_the_rest_is_sent(
    stub: BatchStub, tmp_path: Path
) -> None:
    lines: list[object] = [
        association(1),
        "{not json",
        association(2) | {"itemQuantity": -1},
        {k: v for k, v in association(3).items() if k != "itemId"},
        association(4),
        event(5) | {"occurredAt": "2025-01-31 12:00"},  # no time zone, no T
        "[1, 2]",
        association(6) | {"itemQuantity": float("nan")},
        association(7),
    ]
    path = jsonl(tmp_path / "orders.ndjson", lines)
    result = await _relay(["sync", "associations", str(path), "--batch", "10"], env=_env(stub))
    assert result.exit_code == 0, result.output
    assert stub.calls() == [("association", ["N1", "N4", "N7"])]
    assert "rejected: 6 in all (6 this run)" in result.output
    for expected in (
        "line 2: not JSON",
        "line 3: /itemQuantity: Input should be greater than or equal to 0",
        "line 4: /itemId: Field required",
        "line 6: /occurredAt: Value error, must be an RFC 3339 date-time",
        "line 7: must be a JSON object",
        "line 8: not JSON: NaN is not a JSON number",
    ):
        assert expected in result.output
    assert "accepted: 3 this run; 3 in all" in result.output
    assert SECRET_KEY not in result.output


async def test_a_400_names_its_rows_which_are_rejected_by_line_and_the_rest_is_resent_once(
    stub: BatchStub, tmp_path: Path
) -> None:
    lines = [association(1), association(2, quantity=900), association(3), association(4, quantity=600)]
    path = jsonl(tmp_path / "orders.jsonl", ["", *lines, association(5)])
    summary = await _run(stub, path, FakeTime(), batch=4)
    assert stub.calls() == [
        ("association", ["N1", "N2", "N3", "N4"]),  # refused: /1/itemQuantity and /3/itemQuantity
        ("association", ["N1", "N3"]),
        ("association", ["N5"]),
    ]
    assert [r.text() for r in summary.state.reasons] == [
        f"line 3: refused by the API: /itemQuantity: must be at most {SERVER_MAX_QUANTITY}",
        f"line 5: refused by the API: /itemQuantity: must be at most {SERVER_MAX_QUANTITY}",
    ]
    assert (summary.sent, summary.accepted, summary.rejected) == (3, 3, 2)
    assert stub.accepted == ["N1", "N3", "N5"]


async def test_a_400_without_row_pointers_stops_with_the_state_saved(stub: BatchStub, tmp_path: Path) -> None:
    path = jsonl(tmp_path / "orders.jsonl", [association(n) for n in range(1, 5)])
    too_many = {"error": "too_many_items", "message": "at most 1 item"}
    stub.refusals = [(202, {"accepted": 2, "droppedFields": 0}, {}), (413, too_many, {})]
    result = await _relay(["sync", "associations", str(path), "--batch", "2"], env=_env(stub))
    assert result.exit_code == 1
    assert "the API refused the batch of lines 3-4: HTTP 413 too_many_items: at most 1 item (lower --batch)" in (
        result.output
    )
    state = json.loads((tmp_path / "orders.jsonl.relay-sync.json").read_text())
    assert (state["linesDone"], state["completed"]) == (2, False)


async def test_429_and_503_are_waited_out_and_the_same_batch_is_resent(stub: BatchStub, tmp_path: Path) -> None:
    time = FakeTime()
    path = jsonl(tmp_path / "orders.jsonl", [association(n) for n in range(1, 5)])
    limited = {"error": "rate_limited", "message": "rate limit exceeded; retry after 3 s"}
    down = {"error": "unavailable", "message": "the broker does not answer; try again later"}
    stub.refusals = [(429, limited, {"Retry-After": "3"}), (503, down, {}), (503, down, {"Retry-After": "0"})]
    summary = await _run(stub, path, time, batch=2, rate=1.0)
    first, second, third, fourth, fifth = stub.calls()
    assert first == second == third == fourth == ("association", ["N1", "N2"])
    assert fifth == ("association", ["N3", "N4"])
    # Retry-After 3; none (the back-off's second step: 1 s doubled); 0; then, before the second batch, the pacing
    # of the first: 2 rows at 1 a second (none after the last).
    assert time.waits == [3.0, 2.0, 0.0, 2.0]
    assert summary.accepted == 4
    assert stub.accepted == ["N1", "N2", "N3", "N4"]


async def test_too_many_429s_in_a_row_stop_the_run_resumably(stub: BatchStub, tmp_path: Path) -> None:
    time = FakeTime()
    path = jsonl(tmp_path / "orders.jsonl", [association(n) for n in range(1, 5)])
    limited = {"error": "rate_limited", "message": "rate limit exceeded"}
    stub.refusals = [(202, {"accepted": 2}, {})] + [(429, limited, {})] * (sync.MAX_RETRIES + 1)
    with pytest.raises(sync.SyncFailedError) as failure:
        await _run(stub, path, time, batch=2)
    assert f"gave up after {sync.MAX_RETRIES} retries in a row" in str(failure.value)
    assert failure.value.exit_code == 1
    assert time.waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert failure.value.summary is not None
    assert failure.value.summary.state.lines_done == 2
    state = json.loads((tmp_path / "orders.jsonl.relay-sync.json").read_text())
    assert (state["linesDone"], state["sent"], state["completed"]) == (2, 2, False)


def test_retry_after_in_seconds_as_an_http_date_or_missing() -> None:
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert sync.retry_wait("7", 0, now) == 7.0
    assert sync.retry_wait("Tue, 01 Dec 2026 12:00:09 GMT", 0, now) == 9.0
    assert sync.retry_wait("Tue, 01 Dec 2026 11:00:00 GMT", 3, now) == 0.0, "a date passed: at once"
    assert [sync.retry_wait(None, n, now) for n in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert sync.retry_wait("soon", 2, now) == 4.0
    assert sync.retry_wait("-1", 0, now) == 1.0


async def test_an_interrupted_sync_resumes_where_it_stopped_and_sends_no_line_twice(
    stub: BatchStub, tmp_path: Path
) -> None:
    path = csv_file(
        tmp_path / "history.csv", [["999-SyncMug", PII[0], f"N{n}", "", f"i{n}", 1, *PII[1:]] for n in range(1, 11)]
    )
    args = ["sync", "associations", str(path), "--batch", "3"]
    stub.fail_call = 3
    first = await _relay(args, env=_env(stub))
    assert first.exit_code == 1, first.output
    assert "HTTP 500 internal: boom" in first.output
    assert "Run the same command again to resume" in first.output
    assert stub.accepted == ["N1", "N2", "N3", "N4", "N5", "N6"]
    state = json.loads((tmp_path / "history.csv.relay-sync.json").read_text())
    assert (state["linesDone"], state["sent"], state["completed"]) == (7, 6, False), "header + 6 rows"

    second = await _relay(args, env=_env(stub))
    assert second.exit_code == 0, second.output
    assert "skipped, already done by an earlier run: 6" in second.output
    assert "sent: 4 in 2 batch(es) this run; 10 in all" in second.output
    assert stub.accepted == [f"N{n}" for n in range(1, 11)]
    sent_ok = [n for call, (_, numbers) in enumerate(stub.calls(), start=1) if call != 3 for n in numbers]
    assert sorted(sent_ok) == sorted(f"N{n}" for n in range(1, 11)), "each line sent once, bar the refused batch"

    third = await _relay(args, env=_env(stub))
    assert third.exit_code == 0, third.output
    assert "already completed" in third.output
    assert "nothing sent" in third.output
    assert len(stub.requests) == 5, "a completed sync sends nothing"


async def test_a_changed_file_is_refused_without_restart(stub: BatchStub, tmp_path: Path) -> None:
    path = jsonl(tmp_path / "orders.jsonl", [association(1), association(2)])
    args = ["sync", "associations", str(path)]
    assert (await _relay(args, env=_env(stub))).exit_code == 0
    jsonl(path, [association(1), association(2), association(3)])
    refused = await _relay(args, env=_env(stub))
    assert refused.exit_code == 2
    assert "changed since" in refused.output
    assert "--restart" in refused.output
    assert len(stub.requests) == 1
    restarted = await _relay([*args, "--restart"], env=_env(stub))
    assert restarted.exit_code == 0, restarted.output
    assert stub.calls()[-1] == ("association", ["N1", "N2", "N3"])
    assert stub.accepted == ["N1", "N2", "N3"], "the resent rows were deduped"


async def test_csv_pii_columns_never_reach_the_api_nor_the_output(stub: BatchStub, tmp_path: Path) -> None:
    rows: list[list[object]] = [
        ["999-SyncMug", PII[0], "N1", "O1", "i1", 2, *PII[1:]],
        ["999-SyncMug", PII[0], "N2", "", "i2", "lots", *PII[1:]],  # rejected: still nothing of it shown
        ["999-SyncMug", PII[0], "N3", "", "i3", 1, *PII[1:]],
    ]
    path = csv_file(tmp_path / "history.csv", rows)
    state = tmp_path / "elsewhere.json"
    result = await _relay(["sync", "associations", str(path), "--state", str(state)], env=_env(stub))
    assert result.exit_code == 0, result.output
    (request,) = stub.requests
    assert request["body"] == [
        {"recipeId": "999-SyncMug", "orderNumber": "N1", "orderId": "O1", "itemId": "i1", "itemQuantity": 2},
        {"recipeId": "999-SyncMug", "orderNumber": "N3", "itemId": "i3", "itemQuantity": 1},
    ]
    assert "line 3: /itemQuantity: must be a whole number" in result.output
    assert "columns dropped, never sent: customerName, customerEmail, phone, address" in result.output
    texts = [result.output, *(r.decode() for r in stub.raw), state.read_text()]
    for value in (*PII, SECRET_KEY):
        assert all(value not in text for text in texts), value
    assert not (tmp_path / "history.csv.relay-sync.json").exists()


async def test_a_stop_ends_the_run_after_the_current_batch_with_its_state_saved(
    stub: BatchStub, tmp_path: Path
) -> None:
    path = jsonl(tmp_path / "orders.jsonl", [association(n) for n in range(1, 6)])
    source = sync.load_source(path, "jsonl")
    async with sync.SyncClient(stub.url, SECRET_KEY, sleep=FakeTime().sleep) as client:
        summary = await sync.run_sync(client, source, sync.Options(batch=2), stop=lambda: True)
    assert summary.stopped
    assert stub.calls() == [("association", ["N1", "N2"])]
    assert "status: stopped after line 2 of 5" in summary.text()
    state = json.loads((tmp_path / "orders.jsonl.relay-sync.json").read_text())
    assert (state["linesDone"], state["completed"]) == (2, False)


async def test_dry_run_validates_and_counts_without_sending_or_saving(stub: BatchStub, tmp_path: Path) -> None:
    path = jsonl(tmp_path / "orders.jsonl", [association(1), "{", event(2)])
    result = await _relay(["sync", "associations", str(path), "--dry-run"], env={"RELAY_API_URL": stub.url})
    assert result.exit_code == 0, result.output
    assert "valid, would be sent: 2 (dry run: nothing sent)" in result.output
    assert "line 2: not JSON" in result.output
    assert stub.requests == []
    assert not (tmp_path / "orders.jsonl.relay-sync.json").exists()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--batch", "0"], "--batch"),
        (["--batch", str(sync.MAX_BATCH + 1)], "--batch"),
        (["--rate", "0"], "--rate"),
        (["--format", "xml"], "--format"),
    ],
)
async def test_bad_options_are_usage_errors(stub: BatchStub, tmp_path: Path, args: list[str], option: str) -> None:
    path = jsonl(tmp_path / "orders.jsonl", [association(1)])
    result = await _relay(["sync", "associations", str(path), *args], env=_env(stub))
    assert result.exit_code == 2, result.output
    assert f"'{option}'" in result.output
    assert stub.requests == []


async def test_unusable_files_and_state_are_exit_2(stub: BatchStub, tmp_path: Path) -> None:
    unknown = tmp_path / "orders.txt"
    unknown.write_text("x\n")
    assert (await _relay(["sync", "associations", str(unknown)], env=_env(stub))).exit_code == 2
    headless = tmp_path / "orders.csv"
    headless.write_text("recipe,order\n1,2\n")
    result = await _relay(["sync", "associations", str(headless)], env=_env(stub))
    assert result.exit_code == 2
    assert "the CSV header has no column recipeId, orderNumber, itemId, itemQuantity" in result.output
    path = jsonl(tmp_path / "orders.jsonl", [association(1)])
    (tmp_path / "orders.jsonl.relay-sync.json").write_text("{}")
    result = await _relay(["sync", "associations", str(path)], env=_env(stub))
    assert result.exit_code == 2
    assert "not a readable sync state" in result.output
    assert stub.requests == []


async def test_an_unreachable_api_says_so_without_the_key(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    path = jsonl(tmp_path / "orders.jsonl", [association(1)])
    result = await _relay(["sync", "associations", str(path)], env={"RELAY_API_URL": url, "RELAY_API_KEY": SECRET_KEY})
    assert result.exit_code == 1
    assert f"cannot reach the API at {url}" in result.output
    assert SECRET_KEY not in result.output
