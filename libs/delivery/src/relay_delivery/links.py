"""Expiring download links to bundle files, for destinations that get links instead of files."""

from __future__ import annotations

from relay_contracts.messages import BundleFile
from relay_delivery.ports import PresigningStore
from relay_platform.links import LinkSettings, LinkSigner
from relay_platform.objectstore import ObjectStore

# SigV4 presigned URLs cannot live longer than seven days.
_MAX_PRESIGN_S = 7 * 24 * 3600


class DownloadLinks:
    """Links that work for the receiver and expire after ``LinkSettings.ttl_s``.

    A store that presigns (S3) links to itself; otherwise the link is signed with ``LinkSigner`` and served by
    the ingest API at ``<LINKS_PUBLIC_BASE_URL>/files/<token>`` (same ``LINKS_SIGNING_KEY`` on both sides).
    """

    def __init__(self, store: ObjectStore, settings: LinkSettings) -> None:
        self._store = store
        self._ttl_s = settings.ttl_s
        self._signer = LinkSigner(settings)

    @property
    def valid_for_s(self) -> int:
        """How long a link made now stays valid."""
        if isinstance(self._store, PresigningStore):
            return min(self._ttl_s, _MAX_PRESIGN_S)
        return self._ttl_s

    async def url_for(self, file: BundleFile) -> str:
        """A download URL for ``file`` served under its bundle name."""
        if isinstance(self._store, PresigningStore):
            return await self._store.presigned_get_url(
                file.key,
                expires_s=self.valid_for_s,
                filename=file.name,
                content_type=file.mime_type,
            )
        return self._signer.url_for(file.key, file.name, file.mime_type)
