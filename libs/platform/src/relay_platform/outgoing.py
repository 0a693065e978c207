"""What a use case asks to publish, with no broker import: ``service.py`` stays pure and returns these, the handler
publishes them (``relay_platform.subscriber.publish_all``)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish: its topic, the message and its partition key."""

    topic: str
    message: BaseModel
    key: bytes | None = None
