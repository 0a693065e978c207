"""Settings shared by every service; each service subclasses ``ServiceSettings`` with its own env prefix."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """How to reach the Kafka-protocol broker; shared by every service (env ``KAFKA_*``)."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    request_timeout_ms: int = 10_000
    # A message whose processing hits a transient error is read again after a pause that doubles from
    # `transient_backoff_s` up to `transient_backoff_max_s`, at most `transient_max_reads` times in all; then it is
    # given up on (its consumer reports a failed outcome where it has one, and it is dead-lettered), so one bad
    # message never holds its partition for longer than about a minute.
    transient_backoff_s: float = Field(default=1.0, ge=0)
    transient_backoff_max_s: float = Field(default=15.0, ge=0)
    transient_max_reads: int = Field(default=5, ge=1, le=100)
    # The consumer leaves its group when a handler keeps it from polling this long (Kafka's default, stated so
    # the budgets below can be checked against it); every handler is cut off at `handler_timeout_s`.
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
    # How long the broker may hold a fetch that finds nothing new. Kafka answers as soon as a record arrives, but
    # Tansu (the embedded broker) holds every such fetch for the whole wait, so a record written meanwhile waits
    # for the next fetch: at aiokafka's 500 ms default that is ~220 ms per hop at the median, three hops before a
    # delivery. At 100 ms a hop costs ~20 ms, for a few percent of one core per idle consumer on the broker.
    fetch_max_wait_ms: int = Field(default=100, ge=1, le=30_000)
    # The most a producer sends per partition in one request. aiokafka keeps one request in flight per broker, so
    # at its 16 KiB default a 100-item batch of order events waits for several round trips; 256 KiB carries it in
    # one (and the durable broker stores one object per batch, not per 16 KiB). It stays under the request limit
    # (aiokafka's `max_request_size`, 1 MiB) and Kafka's default record-batch limit (`message.max.bytes`, ~1 MB).
    producer_max_batch_bytes: int = Field(default=256 * 1024, ge=16 * 1024, le=1_000_000)
    handler_timeout_s: float = Field(default=240.0, gt=0)
    # A dead letter keeps the original value up to this size; above it only the size and SHA-256 are kept, so
    # the letter itself always fits the broker's request limit (aiokafka's `max_request_size` is 1 MiB).
    dead_letter_max_payload_bytes: int = Field(default=256 * 1024, ge=0, le=700 * 1024)

    @model_validator(mode="after")
    def _budgets_fit_the_poll_interval(self) -> KafkaSettings:
        worst = self.handler_timeout_s + self.transient_backoff_max_s
        if worst >= self.max_poll_interval_ms / 1000:
            msg = (
                f"handler_timeout_s + transient_backoff_max_s ({worst:g} s) must stay under max_poll_interval_ms "
                f"({self.max_poll_interval_ms} ms), or a slow message gets its consumer evicted from the group"
            )
            raise ValueError(msg)
        return self


class OpsSettings(BaseSettings):
    """The ops HTTP port every service serves (``relay_platform.ops``): ``/healthz``, ``/readyz``, ``/metrics``.

    Env ``OPS_HOST`` / ``OPS_PORT`` without a service prefix: each service runs in its own process (pod), and probes
    and scrapers find every service on the same port. ``OPS_PORT=0`` binds any free port (tests run many apps in
    one process; ``relay dev`` hands each process its own).
    """

    model_config = SettingsConfigDict(env_prefix="OPS_", extra="ignore")

    host: str = "0.0.0.0"  # noqa: S104 - probes and scrapers come from outside the pod
    port: int = Field(default=9100, ge=0, le=65535)
    # Every readiness check is cut off after this long: a hung dependency answers 503, never a hung probe (a
    # Kubernetes probe's own default timeout is 1 s, so keep the probe's timeoutSeconds above this).
    check_timeout_s: float = Field(default=2.0, gt=0, le=30)


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set ``env_prefix`` (``deliver-s3`` -> ``DELIVER_S3_``)."""

    model_config = SettingsConfigDict(extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    # One tenant file for the whole suite: RELAY_TENANTS_FILE, unless the service's own prefix overrides it.
    tenants_file: Path = Field(default_factory=lambda: Path(os.environ.get("RELAY_TENANTS_FILE", "config/dev.yaml")))
    log_level: str = "INFO"
    log_json: bool = True
    ops: OpsSettings = Field(default_factory=OpsSettings)
