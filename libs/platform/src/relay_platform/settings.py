"""Settings shared by every service; each service subclasses ``ServiceSettings`` with its own env prefix."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
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
    # How long a consumer waits before re-reading a message whose processing hit a transient error.
    transient_backoff_s: float = 1.0


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set ``env_prefix`` (``deliver-s3`` -> ``DELIVER_S3_``)."""

    model_config = SettingsConfigDict(extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    # One tenant file for the whole suite: RELAY_TENANTS_FILE, unless the service's own prefix overrides it.
    tenants_file: Path = Field(default_factory=lambda: Path(os.environ.get("RELAY_TENANTS_FILE", "config/dev.yaml")))
    log_level: str = "INFO"
    log_json: bool = True
