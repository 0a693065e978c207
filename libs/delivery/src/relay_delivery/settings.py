"""Settings every deliverer has; a service subclasses ``DelivererSettings`` with its env prefix (``DELIVER_SFTP_``)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from relay_platform.links import LinkSettings
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import ServiceSettings


class DelivererSettings(ServiceSettings):
    """Settings every deliverer has; a service subclasses it with its ``env_prefix`` (``DELIVER_SFTP_``) and the
    default of ``consumer_group`` (``deliver-sftp``).

    ``object_store`` and ``links`` read their own ``OBJECT_STORE_*`` / ``LINKS_*`` variables, shared by every
    service that needs the same store and link key. ``LINKS_SIGNING_KEY`` has no default: without it (or with a
    weak one) a deliverer refuses to start, naming the variable.
    """

    consumer_group: str = Field(min_length=1)
    object_store: ObjectStoreSettings = Field(default_factory=ObjectStoreSettings)
    links: LinkSettings = Field(default_factory=LinkSettings)
    # Attempts in flight at once. Each is a consumer of the group processing its partitions in order (so only
    # processed offsets are committed); more than the topic's partition count leaves consumers idle.
    concurrency: int = Field(default=3, ge=1, le=64)
    # One attempt's budget (the destination call included): past it the attempt is reported `retrying` with a
    # timeout, well before the consumer's handler budget (`KAFKA_HANDLER_TIMEOUT_S`) would cut it off.
    attempt_timeout_s: float = Field(default=180.0, gt=0)
    # After a start: how long requests wait for integrations.control.v1 to be read up to where it stood (so a
    # request of an integration paused before the start is held, not attempted); past it they go on, with a WARNING.
    control_catch_up_s: float = Field(default=30.0, gt=0, le=120)
    # On SIGTERM: how long in-flight attempts may take to finish and publish their outcome.
    shutdown_grace_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _attempt_fits_the_handler_budget(self) -> Self:
        # Room for reading the bundle files and publishing the outcome after the destination call.
        if self.attempt_timeout_s + 15 > self.kafka.handler_timeout_s:
            msg = (
                f"attempt_timeout_s ({self.attempt_timeout_s:g}) must stay at least 15 s under "
                f"KAFKA_HANDLER_TIMEOUT_S ({self.kafka.handler_timeout_s:g})"
            )
            raise ValueError(msg)
        return self
