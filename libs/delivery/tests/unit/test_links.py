"""Download links: the store's own presigned links when it has them, otherwise our signed expiring links."""

from pathlib import Path

from relay_contracts.messages import BundleFile
from relay_delivery import DownloadLinks
from relay_platform.links import LinkSigner
from relay_platform.objectstore import LocalDirectoryStore
from relay_testing.shared_secrets import link_settings

FILE = BundleFile(name="999-a-Ticket.pdf", mime_type="application/pdf", size=1, sha256="0" * 64, key="b/1/t.pdf")


class PresigningFakeStore(LocalDirectoryStore):
    async def presigned_get_url(
        self, key: str, *, expires_s: int = 3600, filename: str | None = None, content_type: str | None = None
    ) -> str:
        return f"https://bucket.example/{key}?expires={expires_s}&name={filename}&type={content_type}"


async def test_local_store_gets_signed_links_served_by_the_ingest_api(tmp_path: Path) -> None:
    settings = link_settings(public_base_url="http://files.example:8080", ttl_s=60)
    url = await DownloadLinks(LocalDirectoryStore(tmp_path), settings).url_for(FILE)

    assert url.startswith("http://files.example:8080/files/")
    assert LinkSigner(settings).verify(url.rsplit("/", 1)[1]) == ("b/1/t.pdf", "999-a-Ticket.pdf", "application/pdf")


async def test_presigning_store_links_to_itself_within_the_presign_limit(tmp_path: Path) -> None:
    settings = link_settings(ttl_s=30 * 24 * 3600)
    url = await DownloadLinks(PresigningFakeStore(tmp_path), settings).url_for(FILE)

    assert url == f"https://bucket.example/b/1/t.pdf?expires={7 * 24 * 3600}&name=999-a-Ticket.pdf&type=application/pdf"
