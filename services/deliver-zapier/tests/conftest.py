"""deliver-zapier test fixtures: artifact store, a file server for signed links, the running app."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from faststream import FastStream

from relay_deliver_zapier.main import create_app
from relay_deliver_zapier.settings import HookSettings, Settings
from relay_delivery.testing import OutcomeCollector, running_app
from relay_devservers.processes import free_port
from relay_devservers.webhooks import WebhookReceiver
from relay_platform.links import LinkExpiredError, LinkInvalidError, LinkSettings, LinkSigner
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import KafkaSettings
from relay_testing import shared_secrets

TENANTS_FILE = Path(__file__).parent / "tenants.yaml"
FILES_PORT = free_port()
LINKS = shared_secrets.link_settings(public_base_url=f"http://127.0.0.1:{FILES_PORT}", ttl_s=3600)


@pytest.fixture(scope="session")
def link_settings() -> LinkSettings:
    return LINKS


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalDirectoryStore:
    return LocalDirectoryStore(tmp_path_factory.mktemp("zapier-artifacts"))


@pytest.fixture(scope="session")
async def file_server(store: LocalDirectoryStore) -> AsyncIterator[str]:
    """Serves ``/files/<token>`` like the ingest API will: LinkSigner.verify, then the object from the store."""

    async def serve(request: web.Request) -> web.Response:
        try:
            key, name, mime_type = LinkSigner(LINKS).verify(request.match_info["token"])
        except LinkExpiredError:
            raise web.HTTPGone(text="link expired") from None
        except LinkInvalidError:
            raise web.HTTPNotFound from None
        return web.Response(
            body=await store.get(key),
            content_type=mime_type,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    app = web.Application()
    app.router.add_get("/files/{token}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", FILES_PORT).start()
    try:
        yield LINKS.public_base_url
    finally:
        await runner.cleanup()


@pytest.fixture(scope="session")
async def outcomes(kafka_bootstrap: str) -> AsyncIterator[OutcomeCollector]:
    async with OutcomeCollector(kafka_bootstrap) as collector:
        yield collector


# Module-scoped: a deliverer left running for the whole session would consume the zapier requests that later
# modules (the retry service's tests) publish, and answer them with outcomes those tests do not expect.
@pytest.fixture(scope="module")
async def zapier_app(
    kafka_bootstrap: str, webhook_receiver: WebhookReceiver, store: LocalDirectoryStore, file_server: str
) -> AsyncIterator[FastStream]:
    """deliver-zapier running against the local hook receiver; hook URLs resolved from the environment."""
    with pytest.MonkeyPatch.context() as env:
        for name in ("ok", "busy", "broken", "rejects"):
            env.setenv(f"TEST_ZAPIER_HOOK_{name.upper()}", webhook_receiver.url(f"hooks/{name}"))
        settings = Settings(
            kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, transient_backoff_s=0.1),
            object_store=ObjectStoreSettings(url=f"file://{store.root}"),
            links=LINKS,
            tenants_file=TENANTS_FILE,
            concurrency=1,
            hooks=HookSettings(request_timeout_s=5),
        )
        async with running_app(create_app(settings)) as app:
            yield app
