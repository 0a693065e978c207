"""Object store failures by errno: the key's or the data's fault is permanent, the store's condition transient;
keys over S3's and file systems' byte limits are refused before any I/O, naming the limit."""

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from relay_platform.errors import PermanentError, TransientError
from relay_platform.objectstore import LocalDirectoryStore, checked_key, classify_os_error
from relay_platform.objectstore_s3 import S3ObjectStore


def real_os_error(action: Callable[[], object]) -> OSError:
    try:
        action()
    except OSError as error:
        return error
    raise AssertionError("expected an OSError")


def seek_before_start(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, -1, os.SEEK_SET)
    finally:
        os.close(fd)


async def test_writing_a_300_byte_file_name_is_a_permanent_error_not_an_endless_retry(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    name = "Ж" * 150  # 300 UTF-8 bytes, 150 characters

    with pytest.raises(PermanentError, match="over the limit of 255"):
        await store.put(f"bundles/{name}.pdf", b"%PDF", content_type="application/pdf")
    # Past the key check, the file system's own refusal is classified the same way.
    with pytest.raises(PermanentError, match="ENAMETOOLONG") as caught:
        LocalDirectoryStore._put_sync(tmp_path / f"{name}.pdf", b"%PDF")
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.__cause__.errno == errno.ENAMETOOLONG
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary file left behind


async def test_a_key_whose_folder_is_a_file_or_whose_name_is_a_folder_fails_permanently(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    await store.put("a/b", b"1", content_type="text/plain")

    with pytest.raises(PermanentError, match=r"(ENOTDIR|EEXIST)"):
        await store.put("a/b/c", b"2", content_type="text/plain")
    with pytest.raises(PermanentError, match="EISDIR"):
        await store.put("a", b"3", content_type="text/plain")
    with pytest.raises(PermanentError, match="EISDIR"):
        await store.get("a")
    assert await store.get("a/b") == b"1"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]


def test_errors_of_the_name_or_the_data_are_permanent(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    file = tmp_path / "file"
    file.write_bytes(b"")
    cases = {
        errno.ENAMETOOLONG: real_os_error(lambda: (tmp_path / ("x" * 300)).write_bytes(b"")),
        errno.ENOTDIR: real_os_error((file / "x").stat),
        errno.EISDIR: real_os_error(tmp_path.read_bytes),
        errno.ELOOP: real_os_error((loop / "x").stat),
        errno.EINVAL: real_os_error(lambda: seek_before_start(file)),
    }
    for code, error in cases.items():
        assert error.errno == code
        classified = classify_os_error(error, "cannot write object")
        assert isinstance(classified, PermanentError), errno.errorcode[code]
        assert errno.errorcode[code] in str(classified)
    for code in (errno.EILSEQ, errno.EFBIG, errno.EEXIST):
        assert isinstance(classify_os_error(OSError(code, os.strerror(code)), "write"), PermanentError)


def test_a_full_disk_and_other_conditions_of_the_store_are_transient() -> None:
    with pytest.raises(OSError, match="No space") as full, Path("/dev/full").open("wb") as handle:
        handle.write(b"x")
    assert full.value.errno == errno.ENOSPC
    classified = classify_os_error(full.value, "cannot write object")
    assert isinstance(classified, TransientError)
    assert "ENOSPC" in str(classified)
    transient = (errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EMFILE, errno.ENFILE, errno.EROFS, errno.EACCES, 9999)
    for code in transient:
        assert isinstance(classify_os_error(OSError(code, "x"), "write"), TransientError), code
    assert isinstance(classify_os_error(OSError("no errno at all"), "write"), TransientError)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("a/" + "x" * 256, "segment is 256 UTF-8 bytes, over the limit of 255"),
        ("a/" + "é" * 128, "segment is 256 UTF-8 bytes, over the limit of 255"),
        ("/".join(["x" * 200] * 6), "1205 UTF-8 bytes, over the limit of 1024"),
        ("a/b\x00c", "control character"),
        ("a/b\nc", "control character"),
        ("a/\ud800", "not valid UTF-8"),
        ("../a", "invalid object key"),
        ("a//b", "invalid object key"),
        ("/a", "invalid object key"),
    ],
)
def test_keys_beyond_the_limits_or_with_control_characters_are_refused_naming_why(key: str, reason: str) -> None:
    with pytest.raises(PermanentError, match=reason):
        checked_key(key)


def test_keys_at_the_limits_are_accepted() -> None:
    assert checked_key("a/" + "é" * 127 + "x").parts[1] == "é" * 127 + "x"
    assert len(checked_key("/".join(["x" * 255] * 3 + ["x" * 254, "a"])).as_posix().encode()) == 1024


async def test_s3_refuses_a_key_that_its_prefix_pushes_past_1024_bytes_before_calling_s3() -> None:
    store = S3ObjectStore(client=None, bucket="bucket", prefix="p" * 250)
    key = "/".join(["x" * 200] * 4)  # 803 bytes: fine alone, 1054 under the prefix

    with pytest.raises(PermanentError, match="over the limit of 1024"):
        await store.put(key, b"x", content_type="text/plain")
