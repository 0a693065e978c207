"""``put_stream``: a file's bytes into the store in bounded chunks, locally and in real S3 (multipart past a part)."""

import hashlib
import io
import tempfile
from pathlib import Path

import pytest

from relay_devservers.seaweedfs import SeaweedS3
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.objectstore_s3 import S3ObjectStore
from relay_platform.objectstore_settings import open_object_store

pytestmark = pytest.mark.integration


def data_of(size: int) -> bytes:
    return (hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1))[:size]


async def test_the_local_store_copies_a_file_into_place(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path / "objects")
    data = data_of(3 * 1024 * 1024 + 5)
    with tempfile.TemporaryFile() as spool:
        spool.write(data)
        spool.seek(0)
        await store.put_stream("bundles/a/big.bin", spool, content_type="application/octet-stream")
    assert await store.get("bundles/a/big.bin") == data
    # Written through a temporary name and renamed: no partial file is left beside it.
    assert [p.name for p in (tmp_path / "objects" / "bundles" / "a").iterdir()] == ["big.bin"]


PART = S3ObjectStore.part_bytes


@pytest.mark.parametrize("size", [0, 1000, PART - 1, PART, 2 * PART + 7])
async def test_s3_takes_small_bodies_in_one_put_and_large_ones_in_parts(seaweedfs: SeaweedS3, size: int) -> None:
    bucket = seaweedfs.create_bucket()
    data = data_of(size)
    async with open_object_store(seaweedfs.object_store_settings(bucket, "artifacts")) as store:
        await store.put_stream("bundles/x.bin", io.BytesIO(data), content_type="application/octet-stream")
        assert await store.get("bundles/x.bin") == data
    head = seaweedfs.client().head_object(Bucket=bucket, Key="artifacts/bundles/x.bin")
    assert head["ContentLength"] == size
    assert head["ContentType"] == "application/octet-stream"
    # A multipart object's ETag ends in "-<parts>".
    parts = (size + S3ObjectStore.part_bytes - 1) // S3ObjectStore.part_bytes
    assert head["ETag"].strip('"').endswith(f"-{parts}") is (size >= S3ObjectStore.part_bytes)
    uploads = seaweedfs.client().list_multipart_uploads(Bucket=bucket)
    assert not uploads.get("Uploads")


class FailsAfterOnePart(io.BytesIO):
    """A body whose disk fails once the first part has been read."""

    def read(self, size: int | None = -1, /) -> bytes:
        if self.tell() >= S3ObjectStore.part_bytes:
            raise OSError("disk read failed")
        return super().read(size)


async def test_a_failed_multipart_upload_is_aborted(seaweedfs: SeaweedS3) -> None:
    bucket = seaweedfs.create_bucket()
    async with open_object_store(seaweedfs.object_store_settings(bucket, "")) as store:
        body = FailsAfterOnePart(data_of(2 * S3ObjectStore.part_bytes))
        with pytest.raises(OSError, match="disk read failed"):
            await store.put_stream("bundles/broken.bin", body, content_type="application/octet-stream")
        assert not await store.exists("bundles/broken.bin")
    assert not seaweedfs.client().list_multipart_uploads(Bucket=bucket).get("Uploads")
