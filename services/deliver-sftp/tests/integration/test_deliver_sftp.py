"""deliver-sftp end to end: DeliverBundle on the real broker -> files on OpenSSH's and asyncssh's SFTP servers ->
outcome. Wrong credentials and an unknown host key fail once and for good; an unreachable server is retried."""

from pathlib import Path

import pytest
from faststream import FastStream

from relay_contracts.messages import OrderLine
from relay_delivery.testing import OutcomeCollector, deliver_bundle, store_bundle
from relay_devservers.sftp import SftpAccount
from relay_platform.objectstore import LocalDirectoryStore

pytestmark = pytest.mark.integration

ORDER = OrderLine(order_id="6182665224482", order_number="1022", item_id="7", item_quantity=1)
FILES = {
    "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf": (
        b"%PDF-1.7" + bytes(range(256)) * 300,
        "application/pdf",
    ),
    "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba.json": (b'{"recipeId": "999-63CHGJokGoxPfSba"}', "application/json"),
}


def files_under(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


async def test_password_login_to_openssh_lands_files_in_the_order_subfolder_without_temp_files(
    sftp_app: FastStream, outcomes: OutcomeCollector, store: LocalDirectoryStore, openssh_sftp: SftpAccount
) -> None:
    files = await store_bundle(store, FILES)
    request = deliver_bundle(
        tenant="acme", integration_id="openssh-password", integration_type="sftp", files=files, order=ORDER
    )

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)

    assert (outcome.status, outcome.final) == ("succeeded", True), outcome.error_message
    assert files_under(openssh_sftp.root / "outbox" / "1022") == {name: data for name, (data, _) in FILES.items()}


async def test_key_login_to_openssh_lands_files_in_the_recipe_subfolder(
    sftp_app: FastStream, outcomes: OutcomeCollector, store: LocalDirectoryStore, openssh_sftp: SftpAccount
) -> None:
    files = await store_bundle(store, {"999-63CHGJokGoxPfSba.json": (b'{"k": 1}', "application/json")})
    request = deliver_bundle(tenant="acme", integration_id="openssh-key", integration_type="sftp", files=files)

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)

    assert outcome.status == "succeeded", outcome.error_message
    assert files_under(openssh_sftp.root / "keyed" / "999-63CHGJokGoxPfSba") == {
        "999-63CHGJokGoxPfSba.json": b'{"k": 1}'
    }


async def test_asyncssh_server_gets_the_files_and_a_redelivery_overwrites_them(
    sftp_app: FastStream, outcomes: OutcomeCollector, store: LocalDirectoryStore, asyncssh_sftp: SftpAccount
) -> None:
    name = "999-63CHGJokGoxPfSba-Ticket.pdf"
    first = deliver_bundle(
        tenant="acme",
        integration_id="asyncssh-password",
        integration_type="sftp",
        files=await store_bundle(store, {name: (b"%PDF first", "application/pdf")}),
    )
    second = deliver_bundle(
        tenant="acme",
        integration_id="asyncssh-password",
        integration_type="sftp",
        files=await store_bundle(store, {name: (b"%PDF second, longer", "application/pdf")}),
    )

    await outcomes.publish(first)
    [outcome] = await outcomes.wait_for(first.delivery_id)
    assert outcome.status == "succeeded", outcome.error_message
    assert files_under(asyncssh_sftp.root / "drop") == {name: b"%PDF first"}

    await outcomes.publish(second)
    [outcome] = await outcomes.wait_for(second.delivery_id)
    assert outcome.status == "succeeded", outcome.error_message
    assert files_under(asyncssh_sftp.root / "drop") == {name: b"%PDF second, longer"}


@pytest.mark.parametrize(
    ("integration_id", "reason"),
    [
        ("wrong-password", "rejected the login of user"),
        ("wrong-host-key", "presented a host key that does not match known-host-key"),
    ],
)
async def test_wrong_credentials_or_unknown_host_key_fail_permanently_after_exactly_one_attempt(
    sftp_app: FastStream, outcomes: OutcomeCollector, store: LocalDirectoryStore, integration_id: str, reason: str
) -> None:
    files = await store_bundle(store, {"999-x.json": (b"{}", "application/json")})
    request = deliver_bundle(tenant="acme", integration_id=integration_id, integration_type="sftp", files=files)
    marker = deliver_bundle(tenant="acme", integration_id="unknown", integration_type="sftp", files=())

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)
    # Same key, same partition: once the marker is done, a re-read of the request would have shown.
    await outcomes.publish(marker.model_copy(update={"recipe_id": request.recipe_id}))
    await outcomes.wait_for(marker.delivery_id)

    assert (outcome.status, outcome.final, outcome.error_class) == ("failed", True, "PermanentError")
    assert reason in (outcome.error_message or "")
    assert "definitely-not-it" not in (outcome.error_message or "")
    assert len(outcomes.outcomes[request.delivery_id]) == 1
    assert request.delivery_id not in outcomes.retries


async def test_unreachable_server_is_retried_later(sftp_app: FastStream, outcomes: OutcomeCollector) -> None:
    request = deliver_bundle(tenant="acme", integration_id="nobody-home", integration_type="sftp", files=())

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)
    retry = await outcomes.wait_for_retry(request.delivery_id)

    assert (outcome.status, outcome.final) == ("retrying", False)
    assert "cannot connect to SFTP server 127.0.0.1" in (outcome.error_message or "")
    assert retry.request == request
