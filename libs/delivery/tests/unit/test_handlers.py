"""The deliverer runtime's routing table on FastStream's in-memory broker: each request is attempted once and its
outcome (plus the retry command of a transient failure) published; a malformed request is dead-lettered and the
next one handled."""

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from delivery_harness import running_email_deliverer

from relay_contracts.messages import DeliverBundle
from relay_contracts.topics import deliveries_requested
from relay_delivery import FetchedFile
from relay_delivery.testing import InMemoryDeliverer, deliver_bundle, store_bundle
from relay_platform.errors import TransientError
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.tenants import EmailIntegration, TenantsConfig

TENANTS = TenantsConfig.model_validate(
    {"tenants": {"acme": {"recipe-prefix": "999", "integrations": [{"id": "mail", "type": "email", "to": "a@b.c"}]}}}
)
REQUESTS = deliveries_requested("email")


class Destination:
    """Delivers, or fails transiently for the delivery IDs in ``busy``."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, list[str]]] = []
        self.busy: set[str] = set()

    async def deliver(
        self, integration: EmailIntegration, request: DeliverBundle, files: Sequence[FetchedFile]
    ) -> None:
        if request.delivery_id in self.busy:
            raise TransientError("server busy", retry_after_s=7)
        self.delivered.append((request.delivery_id, [f.name for f in files]))


def running(tmp_path: Path, destination: Destination) -> AbstractAsyncContextManager[InMemoryDeliverer]:
    return running_email_deliverer(tmp_path, destination, TENANTS)


async def test_a_request_is_attempted_once_and_its_outcome_published_keyed_by_delivery(tmp_path: Path) -> None:
    destination = Destination()
    files = await store_bundle(LocalDirectoryStore(tmp_path / "objects"), {"999-a.json": (b"{}", "application/json")})
    request = deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=files)

    async with running(tmp_path, destination) as deliverer:
        await deliverer.publish(request)
        [outcome] = await deliverer.wait_for_outcomes(1)

    assert (outcome.delivery_id, outcome.status, outcome.final) == (request.delivery_id, "succeeded", True)
    assert [key for _, key in deliverer.outcomes] == [request.delivery_id.encode()]
    assert destination.delivered == [(request.delivery_id, ["999-a.json"])]
    assert deliverer.retries == []


async def test_a_transient_failure_publishes_a_retrying_outcome_and_the_retry_command(tmp_path: Path) -> None:
    destination = Destination()
    request = deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=())
    destination.busy.add(request.delivery_id)

    async with running(tmp_path, destination) as deliverer:
        await deliverer.publish(request)
        await deliverer.wait_for_outcomes(1)

    [(outcome, outcome_key)] = deliverer.outcomes
    assert (outcome.status, outcome.final, outcome.error_message) == ("retrying", False, "server busy")
    [(retry, retry_key)] = deliverer.retries
    assert (retry.request, retry.retry_after_s) == (request, 7)
    assert outcome_key == retry_key == request.delivery_id.encode()


async def test_a_malformed_request_is_dead_lettered_and_the_next_one_is_handled(tmp_path: Path) -> None:
    destination = Destination()
    request = deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=())

    async with running(tmp_path, destination) as deliverer:
        await deliverer.publish({"delivery_id": "x"}, REQUESTS)
        await deliverer.publish(request)
        [outcome] = await deliverer.wait_for_outcomes(1)

    [letter] = deliverer.dead
    assert letter.source_topic == REQUESTS
    assert letter.reason.startswith("invalid message")
    assert (outcome.delivery_id, outcome.status) == (request.delivery_id, "succeeded")
    assert destination.delivered == [(request.delivery_id, [])]
