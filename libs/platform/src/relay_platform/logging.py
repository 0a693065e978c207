"""JSON logs on stderr, each line carrying the current trace and span IDs, credentials redacted."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from relay_platform.redact import redact_secrets


class _TraceContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        record.service = self._service
        trace_id = format(context.trace_id, "032x") if context.is_valid else None
        record.trace_id = trace_id
        record.span_id = format(context.span_id, "016x") if context.is_valid else None
        record.trace_suffix = f" [trace={trace_id}]" if trace_id else ""
        return True


def _is_http_parser_error(error: BaseException) -> bool:
    # aiohttp.http_exceptions.HttpProcessingError, without making aiohttp a dependency of every service.
    return any(c.__name__ == "HttpProcessingError" and c.__module__.startswith("aiohttp") for c in type(error).__mro__)


class _HttpParserErrorFilter(logging.Filter):
    """Drops the text of aiohttp's request-parser errors from a record, keeping their class and status.

    Their message quotes the raw request line or header (``?apikey=…``, ``Authorization: Bearer …``), cut where the
    socket read happened to end, so a fragment of a key can stand there with nothing around it to recognise.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[1] is None:
            return True
        error: BaseException | None = record.exc_info[1]
        while error is not None and not _is_http_parser_error(error):
            error = error.__cause__ or error.__context__
        if error is not None:
            code = getattr(error, "code", None)
            try:
                message = record.getMessage()
            except (TypeError, ValueError):  # a broken format must not turn into an error at the log call
                message = str(record.msg)
            record.msg = f"{message}: {type(error).__name__} (HTTP {code}); the request is not logged"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


class _RedactingFormatter(logging.Formatter):
    """The wrapped formatter's final text (message, extras, traceback) with credentials redacted."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self._formatter = formatter

    def format(self, record: logging.LogRecord) -> str:
        return redact_secrets(self._formatter.format(record))


def configure_logging(
    service: str, level: str = "INFO", *, json_lines: bool = True, stream: TextIO | None = None
) -> None:
    """Route every logger to stderr (or ``stream``) as JSON lines tagged with the service and trace context.

    ``RELAY_LOG_FORMAT=text`` (set by ``relay dev``) switches to one readable line per record. Every line, the
    libraries' own included (they propagate to this root handler), passes ``redact_secrets`` as formatted text.
    """
    json_lines = json_lines and os.environ.get("RELAY_LOG_FORMAT", "json") != "text"
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_TraceContextFilter(service))
    handler.addFilter(_HttpParserErrorFilter())
    formatter: logging.Formatter
    if json_lines:
        formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(trace_id)s %(span_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    else:
        formatter = logging.Formatter("%(levelname)-7s %(name)s: %(message)s%(trace_suffix)s")
    handler.setFormatter(_RedactingFormatter(formatter))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every rebalance detail at INFO; keep the signal. azure-core logs every request URL at INFO,
    # and a SAS URL is a credential: never let those lines out.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("azure").setLevel(logging.WARNING)
    # FastStream's application logger installs its own coloured handler at import; send it through ours.
    faststream_logger = logging.getLogger("faststream")
    faststream_logger.handlers.clear()
    faststream_logger.propagate = True
