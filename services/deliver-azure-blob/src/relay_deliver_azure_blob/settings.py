"""deliver-azure-blob settings (env prefix ``DELIVER_AZURE_BLOB_``): the runtime's, and how uploads are made; where
is per integration."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay_delivery import DelivererSettings

MIB = 1024 * 1024


class BlobSettings(BaseSettings):
    """How uploads are made (``DELIVER_AZURE_BLOB_UPLOAD_CONCURRENCY``...); the uploader takes them as they are."""

    model_config = SettingsConfigDict(env_prefix="DELIVER_AZURE_BLOB_", extra="ignore")

    # Blobs up to this size go up in one Put Blob; larger ones as blocks (parallel) and one Put Block List.
    max_single_put_bytes: int = Field(default=64 * MIB, ge=1, le=5000 * MIB)
    block_size_bytes: int = Field(default=4 * MIB, ge=1, le=4000 * MIB)
    upload_concurrency: int = Field(default=4, ge=1, le=32)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=60.0, gt=0)
    # azure-core's own retries inside one attempt (503 ServerBusy, timeouts, dropped connections); the retry
    # service schedules the next attempt after that.
    client_retry_total: int = Field(default=3, ge=0, le=10)


class Settings(DelivererSettings):
    model_config = SettingsConfigDict(env_prefix="DELIVER_AZURE_BLOB_", extra="ignore")

    consumer_group: str = Field(default="deliver-azure-blob", min_length=1)
    uploads: BlobSettings = Field(default_factory=BlobSettings)
