"""deliver-s3 settings (env prefix ``DELIVER_S3_``): the runtime's, and how uploads are made; where they go is per
integration."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay_delivery import DelivererSettings

MIB = 1024 * 1024


class UploadSettings(BaseSettings):
    """How uploads are made (``DELIVER_S3_MULTIPART_THRESHOLD_BYTES``...); the uploader takes them as they are."""

    model_config = SettingsConfigDict(env_prefix="DELIVER_S3_", extra="ignore")

    # Files larger than this go up as a multipart upload (parts in parallel, aborted on failure).
    multipart_threshold_bytes: int = Field(default=16 * MIB, ge=1)
    # S3 refuses parts under 5 MiB (except the last); a file that would need over 10,000 parts gets larger ones.
    multipart_part_size_bytes: int = Field(default=8 * MIB, ge=5 * MIB, le=5 * 1024 * MIB)
    multipart_concurrency: int = Field(default=4, ge=1, le=32)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=60.0, gt=0)
    # botocore's own retries inside one attempt (throttling, 5xx, dropped connections); the retry service
    # schedules the next attempt after that.
    client_max_attempts: int = Field(default=3, ge=1, le=10)
    # HTTP connections per client (one client per endpoint/region/access key).
    max_pool_connections: int = Field(default=10, ge=1, le=100)


class Settings(DelivererSettings):
    model_config = SettingsConfigDict(env_prefix="DELIVER_S3_", extra="ignore")

    consumer_group: str = Field(default="deliver-s3", min_length=1)
    uploads: UploadSettings = Field(default_factory=UploadSettings)
