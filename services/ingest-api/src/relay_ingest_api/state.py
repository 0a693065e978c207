"""Typed application state (``web.AppKey``): filled by ``create_app`` and its ``cleanup_ctx``."""

from __future__ import annotations

from aiohttp import web

from relay_ingest_api.ports import Ports
from relay_ingest_api.renders import PickTicketRenders
from relay_ingest_api.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
PORTS = web.AppKey("ports", Ports)
"""What the use cases reach (``service.py``); set once the adapters are open."""
RENDERS = web.AppKey("renders", PickTicketRenders)
"""The pick-ticket renders (also in ``PORTS``), there from ``create_app`` on for their counters."""
