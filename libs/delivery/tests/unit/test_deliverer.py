"""One attempt without a broker: every failure becomes exactly one outcome, classified, with secrets scrubbed."""

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from relay_contracts.messages import BundleFile, DeliverBundle, OrderLine
from relay_delivery import Deliverer, FetchedFile, Scrubber
from relay_delivery.testing import deliver_bundle, store_bundle
from relay_platform.errors import PermanentError, TransientError
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.tenants import EmailIntegration, IntegrationBase, TenantsConfig, ZapierIntegration

TENANTS = TenantsConfig.model_validate(
    {
        "tenants": {
            "acme": {
                "recipe-prefix": "999",
                "integrations": [
                    {"id": "mail", "type": "email", "to": "ops@example.com"},
                    {"id": "off", "type": "email", "to": "ops@example.com", "enabled": False},
                    {"id": "zap", "type": "zapier", "hook-url": "${TEST_HOOK_URL}"},
                ],
            }
        }
    }
)


class FakeDestination:
    def __init__(self, error: BaseException | None = None, delay_s: float = 0.0) -> None:
        self.error = error
        self.delay_s = delay_s
        self.calls: list[tuple[str, list[FetchedFile]]] = []

    async def deliver(self, integration: IntegrationBase, request: DeliverBundle, files: Sequence[FetchedFile]) -> None:
        self.calls.append((integration.id, list(files)))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error


@pytest.fixture
def store(tmp_path: Path) -> LocalDirectoryStore:
    return LocalDirectoryStore(tmp_path / "objects")


def make_deliverer(
    store: LocalDirectoryStore, destination: FakeDestination, attempt_timeout_s: float = 300.0
) -> Deliverer[EmailIntegration]:
    return Deliverer(
        integration_type="email",
        integration_class=EmailIntegration,
        tenants=TENANTS,
        store=store,
        destination=destination,
        attempt_timeout_s=attempt_timeout_s,
    )


async def bundle(store: LocalDirectoryStore) -> tuple[BundleFile, ...]:
    return await store_bundle(
        store,
        {"999-abc-Ticket.pdf": (b"%PDF-1.7 ticket", "application/pdf"), "999-abc.json": (b"{}", "application/json")},
    )


async def test_successful_attempt_hands_verified_files_and_reports_succeeded(store: LocalDirectoryStore) -> None:
    destination = FakeDestination()
    files = await bundle(store)
    order = OrderLine(order_id="6182665224482", order_number="1022")
    request = deliver_bundle(
        tenant="acme", integration_id="mail", integration_type="email", files=files, order=order, attempt=2
    )

    result = await make_deliverer(store, destination).attempt(request)

    assert result.retry is None
    outcome = result.outcome
    assert (outcome.status, outcome.final, outcome.attempt) == ("succeeded", True, 2)
    assert outcome.files == ("999-abc-Ticket.pdf", "999-abc.json")
    assert outcome.order == order
    assert outcome.error_class is None
    [(integration_id, fetched)] = destination.calls
    assert integration_id == "mail"
    assert [(f.name, f.data) for f in fetched] == [("999-abc-Ticket.pdf", b"%PDF-1.7 ticket"), ("999-abc.json", b"{}")]


@pytest.mark.parametrize(
    ("tenant", "integration_id", "words"),
    [
        ("nobody", "mail", "tenant 'nobody' is not configured"),
        ("acme", "missing", "'missing' is not configured"),
        ("acme", "off", "disabled"),
        ("acme", "zap", "not of type 'email'"),
    ],
)
async def test_unknown_disabled_or_foreign_integration_fails_permanently_without_calling_destination(
    store: LocalDirectoryStore, tenant: str, integration_id: str, words: str
) -> None:
    destination = FakeDestination()
    request = deliver_bundle(tenant=tenant, integration_id=integration_id, integration_type="email", files=())

    result = await make_deliverer(store, destination).attempt(request)

    assert (result.outcome.status, result.outcome.final) == ("failed", True)
    assert result.outcome.error_class == "IntegrationUnavailableError"
    assert words in (result.outcome.error_message or "")
    assert result.retry is None
    assert destination.calls == []


async def test_artifact_not_matching_its_checksum_fails_permanently(store: LocalDirectoryStore) -> None:
    files = await bundle(store)
    await store.put(files[0].key, b"tampered", content_type="application/pdf")
    request = deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=files)

    result = await make_deliverer(store, FakeDestination()).attempt(request)

    assert (result.outcome.status, result.outcome.error_class) == ("failed", "ArtifactCorruptError")


async def test_missing_artifact_fails_permanently(store: LocalDirectoryStore) -> None:
    files = await bundle(store)
    ghost = files[0].model_copy(update={"key": "bundles/gone/999-abc-Ticket.pdf"})
    request = deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=(ghost,))

    result = await make_deliverer(store, FakeDestination()).attempt(request)

    assert (result.outcome.status, result.outcome.error_class) == ("failed", "ObjectNotFoundError")


async def test_transient_failure_reports_retrying_and_asks_for_a_retry_with_retry_after(
    store: LocalDirectoryStore,
) -> None:
    destination = FakeDestination(TransientError("hook answered 429", retry_after_s=2))
    request = deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=())

    result = await make_deliverer(store, destination).attempt(request)

    assert (result.outcome.status, result.outcome.final) == ("retrying", False)
    assert result.retry is not None
    assert result.retry.request == request
    assert result.retry.retry_after_s == 2
    assert result.retry.error_message == "hook answered 429"


async def test_secrets_are_scrubbed_from_error_messages(
    store: LocalDirectoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOOK_URL", "https://hooks.example.com/catch/123/secret-path")
    destination = FakeDestination(
        PermanentError("login as ops with pw-S3cr3t! refused; hook https://hooks.example.com/catch/123/secret-path")
    )
    deliverer = Deliverer(
        integration_type="zapier",
        integration_class=ZapierIntegration,
        tenants=TENANTS,
        store=store,
        destination=destination,
        scrubber=Scrubber(["pw-S3cr3t!"]),
    )
    request = deliver_bundle(tenant="acme", integration_id="zap", integration_type="zapier", files=())

    result = await deliverer.attempt(request)

    message = result.outcome.error_message or ""
    assert "pw-S3cr3t!" not in message
    assert "secret-path" not in message
    assert message == "login as ops with *** refused; hook ***"


async def test_unexpected_error_becomes_a_transient_outcome_not_a_lost_message(store: LocalDirectoryStore) -> None:
    request = deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=())

    result = await make_deliverer(store, FakeDestination(KeyError("boom"))).attempt(request)

    assert (result.outcome.status, result.outcome.error_class) == ("retrying", "TransientError")
    assert "unexpected KeyError" in (result.outcome.error_message or "")
    assert result.retry is not None


async def test_attempt_exceeding_its_timeout_is_transient(store: LocalDirectoryStore) -> None:
    request = deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=())
    deliverer = make_deliverer(store, FakeDestination(delay_s=5), attempt_timeout_s=0.05)

    result = await deliverer.attempt(request)

    assert result.outcome.status == "retrying"
    assert "timed out" in (result.outcome.error_message or "")
