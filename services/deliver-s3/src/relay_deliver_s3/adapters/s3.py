"""aiobotocore uploads: a client pool for the process lifetime, multipart above a threshold, error translation."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import ValidationError as BotoValidationError

from relay_deliver_s3.domain import S3Target
from relay_deliver_s3.settings import UploadSettings
from relay_platform.errors import PermanentError, RelayError, TransientError
from relay_platform.objectstore_s3 import S3_TRANSIENT_CODES

logger = logging.getLogger("relay.deliver_s3")

# S3 allows at most 10,000 parts per upload.
MAX_PARTS = 10_000
_ABORT_TIMEOUT_S = 10.0

_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "AccountProblem",
    "InvalidSecurity",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
}
_WRONG_REGION = {"AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException"}


def _retry_after_s(error: ClientError) -> float | None:
    headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        return float(headers["retry-after"])
    except (KeyError, TypeError, ValueError):
        return None


def translate_client_error(error: ClientError, bucket: str) -> RelayError:
    """An S3 error response as ``PermanentError``/``TransientError``; names the bucket, never the keys."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    label = code or f"HTTP {status}"
    if code == "NoSuchBucket":
        return PermanentError(f"S3 bucket {bucket!r} does not exist (NoSuchBucket)")
    if code in _CREDENTIALS or status in {401, 403}:
        return PermanentError(
            f"S3 refused the credentials for bucket {bucket!r} ({label}): check access-key-secret, "
            "secret-key-secret and that their policy allows s3:PutObject"
        )
    if code in _WRONG_REGION or status == 301:
        return PermanentError(f"S3 bucket {bucket!r} is not in the configured region or endpoint ({label})")
    if code in S3_TRANSIENT_CODES or status >= 500 or status == 429:
        return TransientError(f"S3 unavailable for bucket {bucket!r} ({label})", retry_after_s=_retry_after_s(error))
    return PermanentError(f"S3 refused the upload to bucket {bucket!r} ({label})")


def translate_botocore_error(error: BotoCoreError, bucket: str) -> RelayError:
    """A client-side botocore failure: bad configuration is permanent, network trouble transient."""
    name = type(error).__name__
    if isinstance(error, NoCredentialsError | PartialCredentialsError | ParamValidationError | BotoValidationError):
        return PermanentError(f"S3 upload to bucket {bucket!r} is misconfigured ({name})")
    if isinstance(error, BotoConnectionError | HTTPClientError):
        return TransientError(f"cannot reach S3 for bucket {bucket!r} ({name})")
    return TransientError(f"S3 upload to bucket {bucket!r} failed ({name})")


class S3ClientPool:
    """One aiobotocore client per (endpoint, region, access key, secret), opened on first use, closed with the pool.

    Integrations come from the tenant file, so the pool is bounded by it; every attempt for the same
    credentials shares one client and its connection pool.
    """

    def __init__(self, settings: UploadSettings, session: AioSession | None = None) -> None:
        self._settings = settings
        self._session = session or get_session()
        self._clients: dict[tuple[str | None, str, str, str], Any] = {}
        self._lock = asyncio.Lock()
        self._stack = AsyncExitStack()
        self._closed = False

    async def __aenter__(self) -> S3ClientPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        async with self._lock:
            self._closed = True
            self._clients.clear()
            await self._stack.aclose()

    def _config(self, target: S3Target) -> AioConfig:
        settings = self._settings
        return AioConfig(
            region_name=target.region,
            connect_timeout=settings.connect_timeout_s,
            read_timeout=settings.read_timeout_s,
            retries={"mode": "standard", "max_attempts": settings.client_max_attempts},
            max_pool_connections=settings.max_pool_connections,
            # S3-compatible stores (SeaweedFS, MinIO) rarely have wildcard DNS for virtual-hosted buckets.
            s3={"addressing_style": "path" if target.endpoint_url else "auto"},
            signature_version="s3v4",
            # Only what S3 requires: CRC trailers by default are not supported by every S3-compatible store.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # The tenant file decides the endpoint, not AWS_ENDPOINT_URL* in this process's environment.
            ignore_configured_endpoint_urls=True,
        )

    async def client(self, target: S3Target) -> Any:
        """The shared client for ``target``'s endpoint, region and credentials."""
        secret = target.secret_access_key.get_secret_value()
        key = (
            target.endpoint_url,
            target.region,
            target.access_key_id.get_secret_value(),
            hashlib.sha256(secret.encode()).hexdigest(),
        )
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._lock:
            if self._closed:
                raise TransientError("S3 client pool is closed (shutting down)")
            client = self._clients.get(key)
            if client is None:
                try:
                    client = await self._stack.enter_async_context(
                        self._session.create_client(
                            "s3",
                            endpoint_url=target.endpoint_url,
                            region_name=target.region,
                            aws_access_key_id=target.access_key_id.get_secret_value(),
                            aws_secret_access_key=secret,
                            config=self._config(target),
                        )
                    )
                except ValueError as error:  # botocore: "Invalid endpoint" and friends
                    raise PermanentError(
                        f"S3 client for bucket {target.bucket!r} cannot be created: check endpoint-url and region "
                        f"({type(error).__name__})"
                    ) from None
                except BotoCoreError as error:
                    raise translate_botocore_error(error, target.bucket) from None
                self._clients[key] = client
            return client


class S3Uploader:
    """``relay_deliver_s3.ports.Uploader`` on aiobotocore: ``put_object`` or a multipart upload."""

    def __init__(self, pool: S3ClientPool, settings: UploadSettings) -> None:
        self._pool = pool
        self._settings = settings
        # (client, bucket) pairs whose bucket was seen to exist; clients live as long as the pool.
        self._checked: set[tuple[int, str]] = set()

    async def put(
        self, target: S3Target, key: str, data: bytes, *, content_type: str, metadata: Mapping[str, str]
    ) -> None:
        client = await self._pool.client(target)
        try:
            await self._check_bucket(client, target.bucket)
            if len(data) > self._settings.multipart_threshold_bytes:
                await self._multipart(client, target.bucket, key, data, content_type=content_type, metadata=metadata)
            else:
                await client.put_object(
                    Bucket=target.bucket, Key=key, Body=data, ContentType=content_type, Metadata=dict(metadata)
                )
        except ClientError as error:
            # `from None`: botocore's messages may echo request details; the taxonomy message is enough.
            raise translate_client_error(error, target.bucket) from None
        except BotoCoreError as error:
            raise translate_botocore_error(error, target.bucket) from None

    async def _check_bucket(self, client: Any, bucket: str) -> None:
        """Refuse a missing bucket once per client: some S3-compatible stores (SeaweedFS) create a bucket on
        the first PUT instead of answering NoSuchBucket, which would hide a typo in the tenant file."""
        marker = (id(client), bucket)
        if marker in self._checked:
            return
        try:
            await client.head_bucket(Bucket=bucket)
        except ClientError as error:
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status == 404:
                raise PermanentError(f"S3 bucket {bucket!r} does not exist (NoSuchBucket)") from None
            if status not in {401, 403}:
                raise
            # A write-only policy (all the seed asks for) may forbid HeadBucket; the upload itself decides.
        self._checked.add(marker)

    def part_size(self, size: int) -> int:
        """The configured part size, raised when the file would otherwise need more than 10,000 parts."""
        return max(self._settings.multipart_part_size_bytes, -(-size // MAX_PARTS))

    async def _multipart(
        self, client: Any, bucket: str, key: str, data: bytes, *, content_type: str, metadata: Mapping[str, str]
    ) -> None:
        created = await client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type, Metadata=dict(metadata)
        )
        upload_id: str = created["UploadId"]
        try:
            parts = await self._upload_parts(client, bucket, key, upload_id, data)
            await client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # Failed, timed out or cancelled: free the stored parts (best effort; a bucket lifecycle rule
            # for incomplete multipart uploads catches what this misses).
            await asyncio.shield(self._abort(client, bucket, key, upload_id))
            raise

    async def _upload_parts(
        self, client: Any, bucket: str, key: str, upload_id: str, data: bytes
    ) -> list[dict[str, Any]]:
        size = self.part_size(len(data))
        slots = asyncio.Semaphore(self._settings.multipart_concurrency)

        async def upload_part(number: int, offset: int) -> dict[str, Any]:
            async with slots:
                response = await client.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data[offset : offset + size]
                )
            return {"PartNumber": number, "ETag": response["ETag"]}

        # Every part finishes (or fails) before this returns, so an abort never races a part still uploading.
        results = await asyncio.gather(
            *(upload_part(number, offset) for number, offset in enumerate(range(0, len(data), size), start=1)),
            return_exceptions=True,
        )
        parts: list[dict[str, Any]] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            parts.append(result)
        return parts

    @staticmethod
    async def _abort(client: Any, bucket: str, key: str, upload_id: str) -> None:
        with contextlib.suppress(ClientError, BotoCoreError, TimeoutError):
            async with asyncio.timeout(_ABORT_TIMEOUT_S):
                await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
                return
        logger.warning("could not abort multipart upload of %r in bucket %r", key, bucket)


@asynccontextmanager
async def open_uploader(settings: UploadSettings) -> AsyncIterator[S3Uploader]:
    """An uploader whose clients live until the context closes (the service's lifespan)."""
    async with S3ClientPool(settings) as pool:
        yield S3Uploader(pool, settings)
