"""azure-storage-blob (aio) uploads: one client per connection string for the process lifetime, error translation."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry
from pydantic import SecretStr

from relay_deliver_azure_blob.settings import BlobSettings
from relay_platform.errors import PermanentError, RelayError, TransientError

_AUTH = {
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "AuthorizationResourceTypeMismatch",
    "AuthorizationServiceMismatch",
    "AuthorizationProtocolMismatch",
    "AuthorizationSourceIPMismatch",
    "InvalidAuthenticationInfo",
    "NoAuthenticationInformation",
    "InsufficientAccountPermissions",
    "AccountIsDisabled",
}
_TRANSIENT = {"ServerBusy", "OperationTimedOut", "InternalError"}


def _header(error: HttpResponseError, name: str) -> str | None:
    headers = getattr(error.response, "headers", None)
    value = headers.get(name) if headers is not None else None
    return str(value) if value is not None else None


def _error_code(error: HttpResponseError) -> str:
    # azure-storage-blob sets `error_code` to a StorageErrorCode (a str enum) or the raw header value.
    code = getattr(error, "error_code", None) or _header(error, "x-ms-error-code")
    return str(getattr(code, "value", code) or "")


def _retry_after_s(error: HttpResponseError) -> float | None:
    try:
        return float(_header(error, "Retry-After") or "")
    except ValueError:
        return None


def translate_azure_error(error: AzureError, container: str) -> RelayError:
    """An Azure SDK failure as ``PermanentError``/``TransientError``; names the container, never the SAS."""
    if isinstance(error, HttpResponseError):
        code = _error_code(error)
        status = error.status_code or 0
        label = code or f"HTTP {status}"
        if code == "ContainerNotFound":
            return PermanentError(f"Azure container {container!r} does not exist (ContainerNotFound)")
        if code in _AUTH or isinstance(error, ClientAuthenticationError) or status in {401, 403}:
            return PermanentError(
                f"Azure refused the connection-string-secure for container {container!r} ({label}): the SAS may be "
                "wrongly signed, expired, or lack write permission"
            )
        if code in _TRANSIENT or status >= 500 or status in {408, 429}:
            return TransientError(
                f"Azure Blob unavailable for container {container!r} ({label})", retry_after_s=_retry_after_s(error)
            )
        return PermanentError(f"Azure refused the upload to container {container!r} ({label})")
    name = type(error).__name__
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return TransientError(f"cannot reach Azure Blob for container {container!r} ({name})")
    return TransientError(f"Azure Blob upload to container {container!r} failed ({name})")


class BlobClientPool:
    """One ``BlobServiceClient`` (and its HTTP session) per connection string, created on first use.

    Integrations come from the tenant file, so the pool is bounded by it. Clients are keyed by the connection
    string's SHA-256, so the secret is not kept as a dictionary key.
    """

    def __init__(self, settings: BlobSettings) -> None:
        self._settings = settings
        self._clients: dict[str, BlobServiceClient] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    async def __aenter__(self) -> BlobClientPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        async with self._lock:
            self._closed = True
            clients = list(self._clients.values())
            self._clients.clear()
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)

    def client(self, connection_string: SecretStr) -> BlobServiceClient:
        """The shared client for ``connection_string``; a malformed one is a ``PermanentError``."""
        raw = connection_string.get_secret_value()
        key = hashlib.sha256(raw.encode()).hexdigest()
        client = self._clients.get(key)
        if client is not None:
            return client
        if self._closed:
            raise TransientError("Azure Blob client pool is closed (shutting down)")
        settings = self._settings
        try:
            client = BlobServiceClient.from_connection_string(
                raw,
                connection_timeout=settings.connect_timeout_s,
                read_timeout=settings.read_timeout_s,
                max_single_put_size=settings.max_single_put_bytes,
                max_block_size=settings.block_size_bytes,
                # The SDK's default first back-off is 15 s; the retry service handles long waits between attempts.
                retry_policy=ExponentialRetry(
                    initial_backoff=1, increment_base=2, retry_total=settings.client_retry_total
                ),
            )
        except ValueError:
            # The SDK's message may quote parts of the string; say only which setting is wrong.
            raise PermanentError("connection-string-secure is not a valid Azure Storage connection string") from None
        # Creating a client does no I/O, so no await happened: no other task can have added one meanwhile.
        self._clients[key] = client
        return client


class AzureBlobUploader:
    """``relay_deliver_azure_blob.ports.BlobUploader`` on azure-storage-blob's asyncio client."""

    def __init__(self, pool: BlobClientPool, settings: BlobSettings) -> None:
        self._pool = pool
        self._settings = settings

    async def put(
        self,
        connection_string: SecretStr,
        container: str,
        name: str,
        data: bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str],
    ) -> None:
        blob = self._pool.client(connection_string).get_blob_client(container, name)
        try:
            await blob.upload_blob(
                data,
                blob_type="BlockBlob",
                overwrite=True,
                content_settings=ContentSettings(content_type=content_type),
                metadata=dict(metadata),
                max_concurrency=self._settings.upload_concurrency,
            )
        except AzureError as error:
            # `from None`: the SDK's message can carry request URLs; the taxonomy message is enough.
            raise translate_azure_error(error, container) from None


@asynccontextmanager
async def open_uploader(settings: BlobSettings) -> AsyncIterator[AzureBlobUploader]:
    """An uploader whose clients live until the context closes (the service's lifespan)."""
    async with BlobClientPool(settings) as pool:
        yield AzureBlobUploader(pool, settings)
