"""Each deliverer against its limit: the destination's raw client sending the same bundle to the same server.

Run: ``uv run --frozen python bench/limits_destinations.py [--smoke] [--uploads N] [--types s3,sftp,...]``.

This process starts the demo tenant's destination servers as the end-to-end benchmark does (``bench/_stack.py``'s
``BenchDestinations``: SMTP capture, asyncssh SFTP, SeaweedFS S3, Azurite when Node is present, the webhook
receiver; free ports) and serves the in-process ones (SFTP, webhook receiver) while the clients run in a process of
their own (``--role clients``), so no client shares its event loop with a server.

The clients build one bundle of the end-to-end benchmark's recipe with the bundle-builder (``limits_ticket``: one
delivery request per integration of the demo tenant, each naming the pick ticket PDF and the recipe JSON, ~50 KiB),
then per destination, every bundle sent as the delivery of an order of its own (SFTP: a folder per order):

- the deliverer: its ``Deliverer.attempt`` (integration lookup, claim-check reads with SHA-256 checks from the local
  artifact store, the destination's ``deliver``: naming, temporary names and renames, links, message composition,
  error translation) around the destination and clients its service's ``create_app`` opens, with its settings'
  defaults; every attempt must succeed. Kafka is not involved: this is the deliverer's work per message.
- the raw client, on the same files: aiobotocore ``put_object`` per file (S3); asyncssh SFTP ``open``/``write``
  per file into a folder made per bundle, on one kept connection; aiosmtplib ``send_message`` of a message with
  the files attached, on kept connections; aiohttp ``POST`` of the same JSON payload (the hook gets links, not
  files); azure-storage-blob ``upload_blob`` per file (Azurite).

Both run ``concurrency`` bundles at a time (the deliverers' default, 3), 200 bundles each (smoke: 4), after one
warm-up bundle, in four slots ordered raw, deliverer, deliverer, raw. Figures: ``deliver_<type>_per_s`` (bundles
per second through the deliverer; the limit is the raw client's rate).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from _limits import emit, figure, python_child, run_child, run_measurement, say

TAG = "destinations"
TYPES = ("s3", "sftp", "email", "zapier", "azure-blob")
RAW_CLIENTS = {
    "s3": "aiobotocore put_object",
    "sftp": "asyncssh SFTP write",
    "email": "aiosmtplib send_message",
    "zapier": "aiohttp POST",
    "azure-blob": "azure-storage-blob upload_blob",
}
# Settings a benchmark must not inherit from the caller's shell (they would point the clients at other servers).
_UNINHERITED = ("OTEL_EXPORTER_OTLP_ENDPOINT", "RELAY_TENANTS_FILE", "OBJECT_STORE_URL", "LINKS_SIGNING_KEY")

Upload = Callable[[int], Awaitable[None]]
"""Sends bundle ``n`` once."""


@dataclass(frozen=True)
class Mode:
    uploads: int
    concurrency: int


FULL = Mode(uploads=200, concurrency=3)
SMOKE = Mode(uploads=4, concurrency=3)


# --- the deliverers, as their services' create_app compose them ------------------------------------------------


@contextlib.asynccontextmanager
async def deliverer(kind: str, request: Any, store: Any) -> AsyncIterator[Upload]:
    """``Deliverer.attempt`` for ``kind`` around the destination its service opens; ``n`` is the delivery ID."""
    from relay_delivery import Deliverer, DownloadLinks, Scrubber
    from relay_platform.tenants import load_tenants

    async with contextlib.AsyncExitStack() as stack:
        service_secrets: list[Any] = []
        if kind == "s3":
            from relay_deliver_s3.adapters.s3 import open_uploader as open_s3
            from relay_deliver_s3.service import S3Destination
            from relay_deliver_s3.settings import Settings as S3Settings
            from relay_platform.tenants import S3Integration

            s3_settings = S3Settings()
            settings: Any = s3_settings
            destination: Any = S3Destination(await stack.enter_async_context(open_s3(s3_settings.uploads)))
            integration_class: Any = S3Integration
        elif kind == "sftp":
            from relay_deliver_sftp.adapters.sftp import sftp_pool
            from relay_deliver_sftp.service import SftpDestination
            from relay_deliver_sftp.settings import Settings as SftpSettings
            from relay_platform.tenants import SftpIntegration

            sftp_settings = SftpSettings()
            settings = sftp_settings
            destination = SftpDestination(await stack.enter_async_context(sftp_pool(sftp_settings.sftp)))
            integration_class = SftpIntegration
        elif kind == "email":
            from relay_deliver_email.service import EmailDestination
            from relay_deliver_email.settings import Settings as EmailSettings
            from relay_platform.smtp import open_smtp_client
            from relay_platform.tenants import EmailIntegration

            email_settings = EmailSettings()
            settings = email_settings
            smtp = await stack.enter_async_context(
                open_smtp_client(email_settings.smtp, connections=email_settings.concurrency)
            )
            destination = EmailDestination(
                smtp, DownloadLinks(store, email_settings.links), from_address=email_settings.from_address
            )
            integration_class = EmailIntegration
            service_secrets = [email_settings.smtp.password]
        elif kind == "zapier":
            from relay_deliver_zapier.adapters.http import hook_poster
            from relay_deliver_zapier.service import ZapierDestination
            from relay_deliver_zapier.settings import Settings as ZapierSettings
            from relay_platform.tenants import ZapierIntegration

            zapier_settings = ZapierSettings()
            settings = zapier_settings
            poster = await stack.enter_async_context(hook_poster(zapier_settings.hooks))
            destination = ZapierDestination(poster, DownloadLinks(store, zapier_settings.links))
            integration_class = ZapierIntegration
        else:
            from relay_deliver_azure_blob.adapters.blob import open_uploader as open_blob
            from relay_deliver_azure_blob.service import AzureBlobDestination
            from relay_deliver_azure_blob.settings import Settings as BlobSettings
            from relay_platform.tenants import AzureBlobIntegration

            blob_settings = BlobSettings()
            settings = blob_settings
            destination = AzureBlobDestination(await stack.enter_async_context(open_blob(blob_settings.uploads)))
            integration_class = AzureBlobIntegration
        runtime = Deliverer(
            integration_type=kind,  # type: ignore[arg-type]
            integration_class=integration_class,
            tenants=load_tenants(settings.tenants_file),
            store=store,
            destination=destination,
            attempt_timeout_s=settings.attempt_timeout_s,
            scrubber=Scrubber(service_secrets),
        )

        async def attempt(n: int) -> None:
            # Each its own delivery of its own order (as the pipeline sends them): SFTP gets a folder per order.
            order = request.order.model_copy(update={"order_number": f"BT-{n}"})
            result = await runtime.attempt(request.model_copy(update={"delivery_id": uuid.uuid4().hex, "order": order}))
            outcome = result.outcome
            if outcome.status != "succeeded":
                raise RuntimeError(f"deliver-{kind}: {outcome.status}: {outcome.error_message}")

        yield attempt


# --- the raw clients ----------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def raw_client(
    kind: str, integration: Any, request: Any, files: Sequence[Any], *, store: Any, concurrency: int
) -> AsyncIterator[Upload]:
    """The destination's client doing no more than sending ``files`` (``FetchedFile``) there."""
    if kind == "s3":
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        async with get_session().create_client(
            "s3",
            endpoint_url=integration.endpoint_url,
            region_name=integration.region,
            aws_access_key_id=integration.access_key_secret.resolve().get_secret_value(),
            aws_secret_access_key=integration.secret_key_secret.resolve().get_secret_value(),
            config=AioConfig(s3={"addressing_style": "path"}),
        ) as client:

            async def put_s3(n: int) -> None:
                for file in files:
                    await client.put_object(
                        Bucket=integration.bucket,
                        Key=f"raw/{n}/{file.name}",
                        Body=file.data,
                        ContentType=file.mime_type,
                    )

            yield put_s3
    elif kind == "sftp":
        import asyncssh

        async with (
            asyncssh.connect(
                integration.host,
                integration.port,
                username=integration.username,
                password=integration.password.resolve().get_secret_value(),
                known_hosts=None,
                agent_path=None,
                config=None,
            ) as connection,
            connection.start_sftp_client() as sftp,
        ):

            async def put_sftp(n: int) -> None:
                # A folder per bundle, as the demo integration asks (subfolders: order).
                await sftp.makedirs(f"raw/{n}", exist_ok=True)
                for file in files:
                    async with sftp.open(f"raw/{n}/{file.name}", "wb") as handle:
                        await handle.write(file.data)

            yield put_sftp
    elif kind == "email":
        import aiosmtplib

        host, port = os.environ["DELIVER_EMAIL_SMTP_HOST"], int(os.environ["DELIVER_EMAIL_SMTP_PORT"])
        connections: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        for _ in range(concurrency):
            smtp = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False)
            await smtp.connect()
            connections.put_nowait(smtp)

        async def send(n: int) -> None:
            message = EmailMessage()
            message["From"] = "Recipe Relay <relay@localhost>"
            message["To"] = ", ".join(integration.to)
            message["Subject"] = f"Bundle {n}"
            message.set_content("The bundle's files are attached.\n")
            for file in files:
                maintype, _, subtype = file.mime_type.partition("/")
                message.add_attachment(file.data, maintype=maintype, subtype=subtype, filename=file.name)
            smtp = await connections.get()
            try:
                await smtp.send_message(message)
            finally:
                connections.put_nowait(smtp)

        try:
            yield send
        finally:
            while not connections.empty():
                with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                    await connections.get_nowait().quit()
    elif kind == "zapier":
        import aiohttp

        from relay_deliver_zapier.domain import payload
        from relay_delivery import DownloadLinks
        from relay_platform.links import LinkSettings

        # The same JSON the deliverer posts (its links made once here: making them is the deliverer's work).
        links = DownloadLinks(store, LinkSettings())
        body = payload(request, [(file, await links.url_for(file.meta)) for file in files])
        url = integration.hook_url.resolve().get_secret_value()
        async with aiohttp.ClientSession() as session:

            async def post(n: int) -> None:
                async with session.post(url, json=body, headers={"Idempotency-Key": f"raw-{n}"}) as response:
                    await response.read()
                    response.raise_for_status()

            yield post
    else:
        from azure.storage.blob import ContentSettings
        from azure.storage.blob.aio import BlobServiceClient

        connection_string = integration.connection_string_secure.resolve().get_secret_value()
        async with BlobServiceClient.from_connection_string(connection_string) as service:
            container = service.get_container_client(integration.container)

            async def put_blob(n: int) -> None:
                for file in files:
                    await container.upload_blob(
                        f"raw/{n}/{file.name}",
                        file.data,
                        overwrite=True,
                        content_settings=ContentSettings(content_type=file.mime_type),
                    )

            yield put_blob


# --- --role clients -----------------------------------------------------------------------------------------------


async def _timed(upload: Upload, first: int, count: int, concurrency: int) -> float:
    """Seconds to send bundles ``first .. first+count-1``, ``concurrency`` at a time."""
    numbers = iter(range(first, first + count))

    async def worker() -> None:
        for n in numbers:
            await upload(n)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def clients(work: Path, kinds: Sequence[str], mode: Mode) -> dict[str, dict[str, float]]:
    """Bundles per second through each deliverer and its raw client."""
    from limits_ticket import bundle_builder

    from relay_contracts.messages import DeliverBundle
    from relay_delivery import fetch_files

    results: dict[str, dict[str, float]] = {}
    async with bundle_builder(work / "objects", Path(os.environ["RELAY_TENANTS_FILE"])) as builder:
        built = [m.message for m in await builder.build(0)]
        requests: dict[str, DeliverBundle] = {m.integration_type: m for m in built if isinstance(m, DeliverBundle)}
        for kind in kinds:
            request = requests[kind]
            integration = builder.tenants.integration(request.tenant, request.integration_id)
            files = await fetch_files(builder.store, request.files)
            async with (
                deliverer(kind, request, builder.store) as through_deliverer,
                raw_client(kind, integration, request, files, store=builder.store, concurrency=mode.concurrency) as raw,
            ):
                await through_deliverer(-1)  # warm-up: connections, first-call costs (and the SFTP directories)
                await raw(-1)
                half = max(mode.uploads // 2, 1)
                spent = {"raw": 0.0, "deliverer": 0.0}
                for name, upload, first in (
                    ("raw", raw, 0),
                    ("deliverer", through_deliverer, 0),
                    ("deliverer", through_deliverer, half),
                    ("raw", raw, half),
                ):
                    spent[name] += await _timed(upload, first, half, mode.concurrency)
            results[kind] = {
                "deliverer_per_s": 2 * half / spent["deliverer"],
                "raw_per_s": 2 * half / spent["raw"],
                "files": len(files),
                "bytes": sum(f.size for f in files),
            }
            say(
                TAG,
                f"{kind:>10}: deliverer {results[kind]['deliverer_per_s']:6.1f} bundles/s, raw "
                f"{RAW_CLIENTS[kind]} {results[kind]['raw_per_s']:6.1f} bundles/s ({len(files)} files, "
                f"{results[kind]['bytes'] / 1024:.0f} KiB)",
            )
    return results


# --- the measurement (servers here, clients in a child) -------------------------------------------------------------


async def measure(mode: Mode, kinds: Sequence[str]) -> list[dict[str, Any]]:
    from _stack import BenchDestinations

    from relay_testing.shared_secrets import secrets_env

    with tempfile.TemporaryDirectory(prefix="relay-bench-destinations-") as tmp:
        work = Path(tmp)
        destinations = BenchDestinations(work / "dev")
        try:
            started = time.monotonic()
            env = await destinations.start()
            tenants = destinations.tenants_file(work / "tenants.yaml")
            say(TAG, f"destination servers up in {time.monotonic() - started:.1f} s")
            if destinations.azurite is None and "azure-blob" in kinds:
                say(TAG, "Azurite is not installed (Node.js and `make node-deps`): no azure-blob figure")
                kinds = [k for k in kinds if k != "azure-blob"]
            child_env = (
                {k: v for k, v in os.environ.items() if k not in _UNINHERITED}
                | secrets_env()
                | env
                | {
                    "RELAY_TENANTS_FILE": str(tenants),
                    "OBJECT_STORE_URL": f"file://{work / 'objects'}",
                }
            )
            argv = python_child(
                Path(__file__), "--role", "clients", "--work", str(work), "--types", ",".join(kinds),
                "--uploads", str(mode.uploads), "--concurrency", str(mode.concurrency),
            )  # fmt: skip
            results: dict[str, dict[str, float]] = await run_child(argv, env=child_env, timeout_s=900)
        finally:
            await destinations.stop()
    goal = ">= 50 bundles/s (one per order at 50 orders/s)"
    return [
        figure(
            f"deliver_{kind.replace('-', '_')}_per_s",
            f"deliver-{kind}, bundles/s (Deliverer.attempt, {mode.concurrency} at a time)",
            results[kind]["deliverer_per_s"],
            "bundles/s",
            goal=goal,
            better="higher",
            limit_label=f"raw {RAW_CLIENTS[kind]}, bundles/s",
            limit_value=results[kind]["raw_per_s"],
        )
        for kind in kinds
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the tiniest run (4 bundles each), for `make test`")
    parser.add_argument("--uploads", type=int, help="bundles per side and destination (200 by default)")
    parser.add_argument("--concurrency", type=int, help="bundles in flight (3, the deliverers' default)")
    parser.add_argument("--types", default=",".join(TYPES), help="comma-separated destination types")
    parser.add_argument("--role", choices=("measure", "clients"), default="measure", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    mode = SMOKE if args.smoke else FULL
    mode = Mode(uploads=args.uploads or mode.uploads, concurrency=args.concurrency or mode.concurrency)
    kinds = [k for k in args.types.split(",") if k]
    unknown = set(kinds) - set(TYPES)
    if unknown:
        parser.error(f"unknown types: {', '.join(sorted(unknown))}")
    if args.role == "clients":
        print(json.dumps(asyncio.run(clients(Path(args.work), kinds, mode))))
        return
    started = time.monotonic()
    figures = run_measurement(measure(mode, kinds))
    say(TAG, f"done in {time.monotonic() - started:.0f} s")
    emit(figures)


if __name__ == "__main__":
    main()
