"""Where files go on the SFTP server (within 255 UTF-8 bytes a name), and how known-host-key is read."""

import re

import asyncssh
import pytest

from relay_contracts.messages import BundleFile, OrderLine
from relay_deliver_sftp.adapters.sftp import host_keys
from relay_deliver_sftp.domain import FINAL_NAME_MAX, plan, target_directory
from relay_delivery import FetchedFile
from relay_delivery.testing import deliver_bundle
from relay_platform.errors import PermanentError
from relay_platform.tenants import SftpIntegration

KEY = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().strip()


def integration(**overrides: object) -> SftpIntegration:
    fields: dict[str, object] = {
        "id": "s",
        "type": "sftp",
        "host": "h",
        "username": "u",
        "password": "${P}",
        "known-host-key": KEY,
    }
    return SftpIntegration.model_validate(fields | overrides)


def test_subfolders_use_order_number_or_recipe_id_and_cannot_escape() -> None:
    order = OrderLine(order_id="1", order_number="../1022/x")
    with_order = deliver_bundle(tenant="t", integration_id="s", integration_type="sftp", files=(), order=order)
    recipe_only = deliver_bundle(tenant="t", integration_id="s", integration_type="sftp", files=())

    assert target_directory(integration(directory="in/", subfolders="order"), with_order) == "in/.._1022_x"
    assert target_directory(integration(directory="in", subfolders="order"), recipe_only) == "in/999-63CHGJokGoxPfSba"
    assert (
        target_directory(integration(directory="/abs", subfolders="recipe"), with_order) == "/abs/999-63CHGJokGoxPfSba"
    )
    assert target_directory(integration(), with_order) == "."


def test_each_file_is_written_to_a_hidden_temporary_name_next_to_its_final_name() -> None:
    meta = BundleFile(name="999-a.json", mime_type="application/json", size=2, sha256="0" * 64, key="k")
    request = deliver_bundle(tenant="t", integration_id="s", integration_type="sftp", files=(), delivery_id="d" * 32)

    [upload] = plan(integration(directory="out"), request, [FetchedFile(meta=meta, data=b"{}")])

    assert upload.final_path == "out/999-a.json"
    assert upload.temp_path == "out/.999-a.json.dddddddddddd.part"


def test_known_host_key_accepts_a_key_or_a_known_hosts_line_and_refuses_garbage() -> None:
    assert len(host_keys(integration())) == 1
    assert len(host_keys(integration(**{"known-host-key": f"[sftp.example]:2222 {KEY}"}))) == 1
    with pytest.raises(PermanentError, match="not an SSH public key"):
        host_keys(integration(**{"known-host-key": "ssh-ed25519 nonsense"}))


def test_an_order_number_of_128_non_ascii_characters_gives_a_folder_of_at_most_255_bytes() -> None:
    order = OrderLine(order_id="1", order_number="Ж" * 128)  # 256 UTF-8 bytes
    request = deliver_bundle(tenant="t", integration_id="s", integration_type="sftp", files=(), order=order)

    folder = target_directory(integration(directory="in", subfolders="order"), request).removeprefix("in/")

    assert len(folder.encode()) <= 255
    assert re.fullmatch(r"Ж{123}~[0-9a-f]{8}", folder)
    other = request.model_copy(update={"order": order.model_copy(update={"order_number": "Ж" * 127 + "Й"})})
    assert target_directory(integration(directory="in", subfolders="order"), other) != f"in/{folder}"


@pytest.mark.parametrize("delivery_id", ["d" * 32, "ддддддддддддддддд", "a/b\\c:d"])
def test_a_long_file_name_and_its_temporary_name_stay_within_255_bytes_and_keep_the_extension(
    delivery_id: str,
) -> None:
    name = "Ж" * 250 + ".pdf"  # 504 UTF-8 bytes: longer than any file system takes
    meta = BundleFile(name=name, mime_type="application/pdf", size=1, sha256="0" * 64, key="k")
    request = deliver_bundle(tenant="t", integration_id="s", integration_type="sftp", files=(), delivery_id=delivery_id)

    [upload] = plan(integration(directory="out"), request, [FetchedFile(meta=meta, data=b"x")])
    [again] = plan(integration(directory="out"), request, [FetchedFile(meta=meta, data=b"x")])

    final, temp = upload.final_path.removeprefix("out/"), upload.temp_path.removeprefix("out/")
    assert len(final.encode()) <= FINAL_NAME_MAX
    assert len(temp.encode()) <= 255
    assert re.fullmatch(r"Ж+~[0-9a-f]{8}\.pdf", final)
    assert temp.startswith(f".{final}.")
    assert temp.endswith(".part")
    assert "/" not in temp
    assert "\\" not in temp
    assert temp.isprintable()
    assert again == upload
