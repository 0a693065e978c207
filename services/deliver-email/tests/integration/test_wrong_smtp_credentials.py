"""deliver-email with a wrong SMTP password: one attempt, a final `failed` outcome that says why, no retry."""

from collections.abc import Callable

import pytest

from relay_deliver_email.main import create_app
from relay_deliver_email.settings import Settings
from relay_delivery.testing import OutcomeCollector, deliver_bundle, running_app, store_bundle
from relay_devservers.smtp import SmtpCapture
from relay_platform.objectstore import LocalDirectoryStore

pytestmark = pytest.mark.integration


async def test_wrong_smtp_credentials_fail_permanently_after_exactly_one_attempt(
    smtp_server: SmtpCapture,
    email_settings: Callable[[], Settings],
    store: LocalDirectoryStore,
    outcomes: OutcomeCollector,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DELIVER_EMAIL_SMTP_PASSWORD", "not-the-password")
    settings = email_settings()
    files = await store_bundle(store, {"999-abc.json": (b"{}", "application/json")})
    request = deliver_bundle(tenant="acme", integration_id="ops-mail", integration_type="email", files=files)

    async with running_app(create_app(settings)):
        await outcomes.publish(request)
        [outcome] = await outcomes.wait_for(request.delivery_id)
        # A second outcome would come now if the request were re-read; publish a marker after it to be sure.
        marker = deliver_bundle(tenant="acme", integration_id="paused", integration_type="email", files=())
        await outcomes.publish(marker.model_copy(update={"recipe_id": request.recipe_id}))
        await outcomes.wait_for(marker.delivery_id)

    assert (outcome.status, outcome.final, outcome.error_class) == ("failed", True, "PermanentError")
    assert "rejected the configured credentials (535" in (outcome.error_message or "")
    assert "not-the-password" not in (outcome.error_message or "")
    assert len(outcomes.outcomes[request.delivery_id]) == 1
    assert request.delivery_id not in outcomes.retries
    assert not smtp_server.find(lambda m: request.delivery_id in (m.message["Message-ID"] or ""))
