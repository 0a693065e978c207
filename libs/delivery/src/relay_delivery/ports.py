"""The ports of the deliverer runtime: the destination every deliverer implements, the bundle files handed to it,
and the artifact store that presigns its own links."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from relay_contracts.messages import BundleFile, DeliverBundle
from relay_platform.tenants import IntegrationBase

IntegrationT_contra = TypeVar("IntegrationT_contra", bound=IntegrationBase, contravariant=True)


@dataclass(frozen=True, slots=True)
class FetchedFile:
    """One bundle file read back from the artifact store, its size and SHA-256 already verified.

    ``name`` is the seed file name (``<recipeId>-<name>.<ext>`` or the order-prefixed form) that the
    destination must use as is; ``key`` is the artifact-store key (for download links).
    """

    meta: BundleFile
    data: bytes

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def mime_type(self) -> str:
        return self.meta.mime_type or "application/octet-stream"

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def size(self) -> int:
        return len(self.data)


class Destination(Protocol[IntegrationT_contra]):
    """The port: deliver one bundle to one integration of one tenant.

    Implementations hold their clients/connection pools (opened once, in the app's start-up, and reused
    across messages) and must be safe to call concurrently (``DelivererSettings.concurrency`` attempts may
    run at once). They translate their SDK's exceptions:

    - ``relay_platform.errors.TransientError`` for anything that may work later (connection refused,
      timeouts, 429/5xx); pass the destination's ``Retry-After`` as ``retry_after_s``.
    - ``relay_platform.errors.PermanentError`` for what will fail again (wrong credentials, unknown host key,
      4xx, missing bucket).

    Error messages must say what went wrong for an operator but hold no secret and no PII; the runtime also
    scrubs the integration's resolved secrets out of them defensively. A redelivery of the same
    ``request.delivery_id`` must overwrite, not duplicate, where the destination allows it.
    """

    async def deliver(
        self, integration: IntegrationT_contra, request: DeliverBundle, files: Sequence[FetchedFile]
    ) -> None: ...


@runtime_checkable
class PresigningStore(Protocol):
    """An artifact store that can hand out its own time-limited GET links (the S3 store)."""

    async def presigned_get_url(
        self, key: str, *, expires_s: int = 3600, filename: str | None = None, content_type: str | None = None
    ) -> str: ...
