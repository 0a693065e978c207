"""pytest fixtures (loaded from the root conftest): real servers started once per session."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from relay_devservers.azurite import AzuriteBlob
from relay_devservers.kafka import TansuBroker
from relay_devservers.seaweedfs import SeaweedS3
from relay_devservers.sftp import AsyncsshSftp, OpenSshSftp, SftpAccount
from relay_devservers.smtp import SmtpCapture
from relay_devservers.webhooks import WebhookReceiver
from relay_platform.broker import ensure_topics


def pytest_configure(config: pytest.Config) -> None:  # noqa: ARG001 - pytest's hook signature
    """Every app a test builds serves its ops port on a free loopback port (``OpsSettings`` reads ``OPS_*`` when
    the settings are made): many apps run in one test process, and 9100 may be taken. Set before any fixture or
    test builds settings; processes a test starts inherit it."""
    os.environ["OPS_PORT"] = "0"
    os.environ["OPS_HOST"] = "127.0.0.1"


@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def tansu(servers_dir: Path) -> Iterator[TansuBroker]:
    """A real Kafka-protocol broker with every Recipe Relay topic created."""
    broker = TansuBroker(servers_dir).start()
    try:
        asyncio.run(ensure_topics(broker.bootstrap))
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tansu: TansuBroker) -> str:
    return tansu.bootstrap


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real S3 server for the whole session; create your own buckets with ``seaweedfs.create_bucket()``."""
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteBlob]:
    """A real Azure Blob endpoint for the whole session; create your own containers with ``create_container()``."""
    server = AzuriteBlob(tmp_path_factory.mktemp("azurite")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def smtp_server(servers_dir: Path) -> Iterator[SmtpCapture]:
    """A real SMTP capture server on a free loopback port that requires AUTH as ``relay`` / ``relay-smtp-pw``.

    ``smtp_server.port``, ``.username``, ``.password``; received mail via ``.messages()`` / ``.find(...)`` or
    ``await smtp_server.wait_for_async(lambda mail: ...)`` (``CapturedMail.attachments()`` decodes files).
    """
    server = SmtpCapture(servers_dir, username="relay", password="relay-smtp-pw").start()  # noqa: S106
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def openssh_sftp() -> Iterator[SftpAccount]:
    """OpenSSH sshd serving SFTP on a free loopback port, for a real system user with a password and a key.

    Fails (does not skip) when ``/usr/sbin/sshd`` is missing: ``apt-get install -y openssh-server``.
    """
    server = OpenSshSftp()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def asyncssh_sftp(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SftpAccount]:
    """asyncssh's SFTP server on a free loopback port (password and key login), chrooted to a temp directory."""
    server = AsyncsshSftp(tmp_path_factory.mktemp("asyncssh-sftp"))
    try:
        yield await server.start()
    finally:
        await server.stop()


@pytest.fixture(scope="session")
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    """A webhook receiver on a free loopback port for the whole session; script answers per path (use a
    unique path per test): ``webhook_receiver.script("hook-1", Reply(429, {"Retry-After": "2"}))``."""
    receiver = await WebhookReceiver().start()
    try:
        yield receiver
    finally:
        await receiver.stop()
