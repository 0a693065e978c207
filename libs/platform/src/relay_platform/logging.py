"""JSON logs on stderr, each line carrying the current trace and span IDs."""

from __future__ import annotations

import logging
import os
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter


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


def configure_logging(service: str, level: str = "INFO", *, json_lines: bool = True) -> None:
    """Route every logger to stderr as JSON lines tagged with the service and trace context.

    ``RELAY_LOG_FORMAT=text`` (set by ``relay dev``) switches to one readable line per record.
    """
    json_lines = json_lines and os.environ.get("RELAY_LOG_FORMAT", "json") != "text"
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_TraceContextFilter(service))
    if json_lines:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(trace_id)s %(span_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(levelname)-7s %(name)s: %(message)s%(trace_suffix)s"))
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
