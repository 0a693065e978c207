"""No API key reaches a log line of the running API, whatever malformed request carries it (aiohttp's own
loggers included), through the logging every service configures (``relay_platform.logging``)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from relay_platform.logging import configure_logging

pytestmark = pytest.mark.integration

# A key the API knows (tests/tenants.yaml: so authenticated code runs too) and one it does not (the 401 path).
KNOWN_KEY = "demo-writer"
UNKNOWN_KEY = "rr-" + secrets.token_urlsafe(24)
KEYS = (KNOWN_KEY, UNKNOWN_KEY)
# ``{key}`` is replaced by each key; every request asks the server to close, so a response reads to EOF.
MALFORMED = {
    "control byte in the request line": b"GET /api/v2/orders?apikey={key}\x01 HTTP/1.1\r\nHost: relay\r\n\r\n",
    "bad method": b"G\x01T /api/v2/orders?apikey={key} HTTP/1.1\r\nHost: relay\r\n\r\n",
    "control byte in the bearer header": (
        b"GET /api/v2/orders HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer {key}\x01\r\n\r\n"
    ),
    "header line without colon after the bearer header": (
        b"GET /api/v2/orders?apikey={key} HTTP/1.1\r\nAuthorization: Bearer {key}\r\nno colon {key}\r\n\r\n"
    ),
    "over-long URL": b"GET /api/v2/orders?apikey={key}&pad=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: relay\r\n\r\n",
    "over-long bearer header": (
        b"GET /api/v2/orders HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer {key}" + b"x" * 9000 + b"\r\n\r\n"
    ),
    "HTTP/0.9": b"GET /api/v2/orders?apikey={key}\r\n\r\n",
    "unknown HTTP version": b"GET /api/v2/orders?apikey={key} HTTP/7.3\r\nHost: relay\r\n\r\n",
    "bad chunk size": (
        b"POST /api/v2/recipe/order?apikey={key} HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nZZ{key}\r\n[]\r\n0\r\n\r\n"
    ),
    "content-length with chunked": (
        b"POST /api/v2/recipe/order?apikey={key} HTTP/1.1\r\nHost: relay\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "bad content-length": (
        b"POST /api/v2/recipe/order?apikey={key} HTTP/1.1\r\nHost: relay\r\nContent-Length: {key}\r\n\r\n[]"
    ),
    "space before the header colon": (
        b"GET /api/v2/orders?apikey={key} HTTP/1.1\r\nHost: relay\r\nAuthorization : Bearer {key}\r\n\r\n"
    ),
}
WELL_FORMED = {
    "apikey in the query": b"GET /api/v2/orders?orderNumber=1022&apikey={key} HTTP/1.1\r\nHost: relay\r\n"
    b"Connection: close\r\n\r\n",
    "bearer header": b"GET /api/v2/orders?orderNumber=1022 HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer {key}\r\n"
    b"Connection: close\r\n\r\n",
    "apikey on an unknown route": b"GET /nowhere?apikey={key}&access_token={key} HTTP/1.1\r\nHost: relay\r\n"
    b"Connection: close\r\n\r\n",
    "apikey on a file link": b"GET /files/not-a-token?apikey={key} HTTP/1.1\r\nHost: relay\r\n"
    b"Connection: close\r\n\r\n",
    "bad JSON with apikey": b"POST /api/v2/recipe/order?apikey={key} HTTP/1.1\r\nHost: relay\r\n"
    b"Content-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{not json",
}


@pytest.fixture(params=["json", "text"])
def service_log(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The logging ``start_observability`` sets up (at DEBUG, so nothing is filtered away), into a buffer; the
    test session's own logging comes back afterwards."""
    monkeypatch.delenv("RELAY_LOG_FORMAT", raising=False)
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved = {name: logging.getLogger(name).level for name in ("aiokafka", "azure")}
    faststream = logging.getLogger("faststream")
    saved_faststream = (faststream.handlers[:], faststream.propagate)
    buffer = io.StringIO()
    configure_logging("ingest-api", "DEBUG", json_lines=request.param == "json", stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:], level = saved_root
        root.setLevel(level)
        for name, logger_level in saved.items():
            logging.getLogger(name).setLevel(logger_level)
        faststream.handlers[:], faststream.propagate = saved_faststream


async def _exchange(url: str, raw: bytes, *, split_at: int | None = None) -> bytes:
    """Send ``raw`` on a fresh connection (in two writes when ``split_at``) and read the answer to EOF."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        parts = [raw] if split_at is None else [raw[:split_at], raw[split_at:]]
        for part in parts:
            writer.write(part)
            await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


def _status(response: bytes) -> int:
    first = response.split(b"\r\n", 1)[0].split()
    assert len(first) >= 2, response[:200]
    assert first[0].startswith(b"HTTP/"), response[:200]
    return int(first[1])


def _fragments(key: str, size: int = 8) -> set[str]:
    return {key[i : i + size] for i in range(len(key) - size + 1)}


def _assert_no_key(log: str) -> None:
    for key in KEYS:
        leaked = [line for line in log.splitlines() if any(part in line for part in _fragments(key))]
        assert not leaked, f"a fragment of {key!r} was logged:\n" + "\n".join(leaked)


async def test_malformed_requests_carrying_a_key_get_4xx_and_leave_no_trace_of_it_in_the_log(
    api: Any, service_log: io.StringIO
) -> None:
    answers: dict[str, int] = {}
    for key in KEYS:
        for name, template in MALFORMED.items():
            raw = template.replace(b"{key}", key.encode())
            response = await _exchange(api.url, raw)
            if response:  # a request the parser cannot even frame may be dropped without an answer
                answers[f"{name} ({key})"] = _status(response)
        # The same bad request line, cut inside the key between two socket writes.
        raw = MALFORMED["control byte in the request line"].replace(b"{key}", key.encode())
        response = await _exchange(api.url, raw, split_at=raw.index(key.encode()) + 4)
        if response:
            answers[f"split request line ({key})"] = _status(response)

    assert answers, "no malformed request was answered"
    assert {name: status for name, status in answers.items() if not 400 <= status < 500} == {}
    log = service_log.getvalue()
    assert "Error handling request" in log, "aiohttp's parser-error path was not exercised"
    _assert_no_key(log)


async def test_well_formed_requests_with_a_key_leave_no_trace_of_it_in_the_log(
    api: Any, service_log: io.StringIO
) -> None:
    for key in KEYS:
        for name, template in WELL_FORMED.items():
            response = await _exchange(api.url, template.replace(b"{key}", key.encode()))
            assert _status(response) < 500, (name, response[:300])

    log = service_log.getvalue()
    assert "/api/v2/orders" in log, "the access log did not record the requests"
    _assert_no_key(log)


async def test_every_line_stays_parseable_json_after_redaction(api: Any, service_log: io.StringIO) -> None:
    raw = MALFORMED["control byte in the request line"].replace(b"{key}", UNKNOWN_KEY.encode())
    await _exchange(api.url, raw)
    logging.getLogger("relay.test").warning('request {"url": "%s?apikey=%s"}', api.url, UNKNOWN_KEY)

    lines = service_log.getvalue().splitlines()
    if lines and lines[0].startswith("{"):
        records: list[dict[str, Any]] = [json.loads(line) for line in lines]
        assert any("apikey=***" in record["message"] for record in records)
    else:
        assert any("apikey=***" in line for line in lines)
    _assert_no_key("\n".join(lines))
