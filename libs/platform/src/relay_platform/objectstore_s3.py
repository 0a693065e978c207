"""S3 object store adapter (aiobotocore): one client per process, SDK errors translated into the error taxonomy.

Needs the optional extra ``relay-platform[s3]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from functools import partial
from typing import IO, Any, TypeVar

from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from relay_platform.errors import PermanentError, RelayError, TransientError
from relay_platform.naming import KEY_MAX_BYTES
from relay_platform.objectstore import ObjectNotFoundError, checked_key

T = TypeVar("T")

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
# S3 error codes that mean "try again later" (shared with the S3 deliverer).
S3_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "RequestLimitExceeded",
        "OperationAborted",
        "TooManyRequests",
    }
)


def translate_client_error(error: ClientError, what: str) -> PermanentError | TransientError:
    """Map an S3 error response to the taxonomy; the message carries the S3 code, never credentials."""
    info = error.response.get("Error", {})
    code = str(info.get("Code", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in _NOT_FOUND:
        return ObjectNotFoundError(f"{what}: no such object")
    if code in S3_TRANSIENT_CODES or status >= 500 or status == 429:
        return TransientError(f"{what}: S3 {code or status}")
    # Wrong keys, access denied, missing bucket, bad request, KeyTooLongError: retrying the same call cannot help.
    return PermanentError(f"{what}: S3 {code or status}")


def translate_botocore_error(error: BotoCoreError, what: str) -> PermanentError | TransientError:
    if isinstance(error, NoCredentialsError | PartialCredentialsError | ParamValidationError):
        return PermanentError(f"{what}: {type(error).__name__}")
    if isinstance(error, BotoConnectionError | HTTPClientError):
        return TransientError(f"{what}: {type(error).__name__}")
    return TransientError(f"{what}: {type(error).__name__}")


def _read_part(body: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes of ``body``, fewer only at its end (a stream may return short reads)."""
    pieces: list[bytes] = []
    remaining = size
    while remaining > 0 and (piece := body.read(remaining)):
        pieces.append(piece)
        remaining -= len(piece)
    return b"".join(pieces)


class S3ObjectStore:
    """Objects in ``bucket`` under ``prefix``; keys are checked like the local store's (no ``..`` escapes)."""

    # ``put_stream``: a body up to one part goes up in one PUT, a larger one as a multipart upload holding one part
    # in memory at a time (S3 parts but the last must be at least 5 MiB).
    part_bytes = 8 * 1024 * 1024

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
        max_pool_connections: int = 20,
    ) -> AsyncIterator[S3ObjectStore]:
        """Open one S3 client for the lifetime of the context (a process's lifespan)."""
        config = Config(
            region_name=region,
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"mode": "standard", "max_attempts": 3},
            max_pool_connections=max_pool_connections,
            # Custom endpoints (SeaweedFS, MinIO) rarely have wildcard DNS for virtual-hosted buckets.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            signature_version="s3v4",
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = get_session()
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                session.create_client(
                    "s3",
                    endpoint_url=endpoint_url,
                    region_name=region,
                    aws_access_key_id=access_key_id,
                    aws_secret_access_key=secret_access_key,
                    config=config,
                )
            )
            yield cls(client, bucket, prefix)

    def _key(self, key: str) -> str:
        path = checked_key(key).as_posix()
        s3_key = f"{self.prefix}/{path}" if self.prefix else path
        # S3 answers an over-long key with KeyTooLongError (permanent too); refusing first names the limit.
        if (size := len(s3_key.encode())) > KEY_MAX_BYTES:
            raise PermanentError(
                f"S3 key under prefix {self.prefix!r} is {size} UTF-8 bytes, over the limit of {KEY_MAX_BYTES}"
            )
        return s3_key

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except ClientError as error:
            raise translate_client_error(error, what) from error
        except BotoCoreError as error:
            raise translate_botocore_error(error, what) from error

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        s3_key = self._key(key)
        await self._call(
            f"put {key!r}",
            lambda: self._client.put_object(Bucket=self.bucket, Key=s3_key, Body=data, ContentType=content_type),
        )

    async def put_stream(self, key: str, body: IO[bytes], *, content_type: str) -> None:
        s3_key = self._key(key)
        what = f"put {key!r}"
        chunk = await asyncio.to_thread(_read_part, body, self.part_bytes)
        if len(chunk) < self.part_bytes:
            await self._call(
                what,
                partial(self._client.put_object, Bucket=self.bucket, Key=s3_key, Body=chunk, ContentType=content_type),
            )
            return
        created = await self._call(
            what,
            partial(self._client.create_multipart_upload, Bucket=self.bucket, Key=s3_key, ContentType=content_type),
        )
        upload = {"Bucket": self.bucket, "Key": s3_key, "UploadId": created["UploadId"]}
        parts: list[dict[str, Any]] = []
        try:
            while chunk:
                number = len(parts) + 1
                answer = await self._call(
                    f"{what} part {number}", partial(self._client.upload_part, **upload, PartNumber=number, Body=chunk)
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
                chunk = await asyncio.to_thread(_read_part, body, self.part_bytes)
            await self._call(
                what, partial(self._client.complete_multipart_upload, **upload, MultipartUpload={"Parts": parts})
            )
        except BaseException:
            # Best effort: an upload left behind costs storage until the bucket's lifecycle rule removes it.
            with suppress(RelayError):
                await self._call(f"abort {what}", partial(self._client.abort_multipart_upload, **upload))
            raise

    async def get(self, key: str) -> bytes:
        s3_key = self._key(key)

        async def read() -> bytes:
            response = await self._client.get_object(Bucket=self.bucket, Key=s3_key)
            async with response["Body"] as body:
                data: bytes = await body.read()
            return data

        return await self._call(f"get {key!r}", read)

    async def exists(self, key: str) -> bool:
        s3_key = self._key(key)
        try:
            await self._call(f"head {key!r}", lambda: self._client.head_object(Bucket=self.bucket, Key=s3_key))
        except ObjectNotFoundError:
            return False
        return True

    async def ping(self) -> None:
        await self._call(f"bucket {self.bucket!r}", lambda: self._client.head_bucket(Bucket=self.bucket))

    async def presigned_get_url(
        self, key: str, *, expires_s: int = 3600, filename: str | None = None, content_type: str | None = None
    ) -> str:
        """A time-limited GET link to ``key`` (optionally served as download ``filename`` / ``content_type``)."""
        params: dict[str, str] = {"Bucket": self.bucket, "Key": self._key(key)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename.replace(chr(34), "")}"'
        if content_type:
            params["ResponseContentType"] = content_type
        url: str = await self._call(
            f"presign {key!r}",
            lambda: self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s),
        )
        return url
