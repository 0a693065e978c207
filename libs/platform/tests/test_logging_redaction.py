"""Every line the services' logging writes is redacted: messages, tracebacks, the libraries' own loggers."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import BadHttpMessage, BadStatusLine

from relay_platform.logging import configure_logging

KEY = "rr-Kq8vX2mN5pL7wZ3t"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved = {name: logging.getLogger(name).level for name in ("aiokafka", "azure")}
    faststream = logging.getLogger("faststream")
    saved_faststream = (faststream.handlers[:], faststream.propagate)
    yield
    root.handlers[:], level = saved_root
    root.setLevel(level)
    for name, logger_level in saved.items():
        logging.getLogger(name).setLevel(logger_level)
    faststream.handlers[:], faststream.propagate = saved_faststream


def _configure(json_lines: bool, monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    monkeypatch.delenv("RELAY_LOG_FORMAT", raising=False)
    buffer = io.StringIO()
    configure_logging("test-service", "DEBUG", json_lines=json_lines, stream=buffer)
    return buffer


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("json_lines", [True, False])
@pytest.mark.parametrize(
    "logger_name", ["relay.delivery", "aiohttp.server", "aiohttp.access", "aiokafka.conn", "botocore.endpoint"]
)
def test_messages_and_tracebacks_of_any_logger_are_redacted(
    logger_name: str, json_lines: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer = _configure(json_lines, monkeypatch)
    try:
        raise ValueError(f"GET https://api.example.com/v1?apikey={KEY} failed; Authorization: Bearer {KEY}")
    except ValueError:
        logging.getLogger(logger_name).exception("request to %s?token=%s", "https://x", KEY)
    logging.getLogger(logger_name).warning("stack", stack_info=True, extra={"url": f"sftp://ops:{KEY}@h"})

    text = buffer.getvalue()
    assert KEY not in text
    assert "token=***" in text
    assert "apikey=***" in text
    if json_lines:
        records = [json.loads(line) for line in text.splitlines()]
        assert records[0]["logger"] == logger_name
        assert "Bearer ***" in records[0]["exc_info"]
        assert records[1]["url"] == "sftp://ops:***@h"


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("json_lines", [True, False])
def test_aiohttp_parser_errors_are_logged_without_the_raw_request(
    json_lines: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer = _configure(json_lines, monkeypatch)
    # The parser quotes what it read up to a socket boundary: here a bare fragment of a key, nothing to recognise.
    fragment = KEY[5:]
    errors: list[BaseException] = [BadStatusLine(f"{fragment}\x01 HTTP/1.1"), BadHttpMessage(f"{fragment}")]
    try:
        try:
            raise BadHttpMessage(f"Invalid header value char:\n\n  b'{fragment}'\n  ^")
        except BadHttpMessage as parser_error:
            raise RuntimeError("handler failed") from parser_error
    except RuntimeError as chained:
        errors.append(chained)

    for error in errors:
        logging.getLogger("aiohttp.server").error("Error handling request from %s", "127.0.0.1", exc_info=error)

    lines = buffer.getvalue().splitlines()
    assert len(lines) == 3
    assert not any(fragment[:8] in line for line in lines)
    assert "Error handling request from 127.0.0.1: BadStatusLine (HTTP 400); the request is not logged" in lines[0]
    assert "BadHttpMessage (HTTP 400)" in lines[2]


@pytest.mark.usefixtures("restore_logging")
def test_a_faststream_record_goes_through_the_same_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = _configure(True, monkeypatch)

    logging.getLogger("faststream.access.kafka").error("connect sasl://relay:%s@broker", KEY)

    assert KEY not in buffer.getvalue()
    assert "sasl://relay:***@broker" in buffer.getvalue()
