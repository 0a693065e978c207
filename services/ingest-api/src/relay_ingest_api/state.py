"""Typed application state (``web.AppKey``): filled by ``create_app`` and its ``cleanup_ctx``."""

from __future__ import annotations

from aiohttp import web

from relay_ingest_api.adapters.association_store import AssociationStoreClient
from relay_ingest_api.adapters.kafka import EventPublisher
from relay_ingest_api.ratelimit import FailedKeyThrottle, FanOutLimiter, KeyRateLimiter
from relay_ingest_api.renders import PickTicketRenders
from relay_ingest_api.settings import Settings
from relay_platform.links import LinkSigner
from relay_platform.objectstore import ObjectStore
from relay_platform.tenants import TenantsConfig

SETTINGS = web.AppKey("settings", Settings)
TENANTS = web.AppKey("tenants", TenantsConfig)
LIMITER = web.AppKey("limiter", KeyRateLimiter)
FANOUT = web.AppKey("fanout", FanOutLimiter)
FAILED_KEYS = web.AppKey("failed_keys", FailedKeyThrottle)
SIGNER = web.AppKey("signer", LinkSigner)
PUBLISHER = web.AppKey("publisher", EventPublisher)
OBJECTS = web.AppKey("objects", ObjectStore)
ASSOCIATIONS = web.AppKey("associations", AssociationStoreClient)
RENDERS = web.AppKey("renders", PickTicketRenders)
