"""Local real servers standing in for the ``demo`` tenant's destinations in ``make run``.

The ports are fixed because ``config/dev.yaml`` names them; credentials are made once per data directory and
handed to the services through the ``${DEMO_*}`` references the config uses.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from relay_devservers.azurite import AzuriteBlob, azurite_binary
from relay_devservers.processes import port_answers
from relay_devservers.seaweedfs import SeaweedS3
from relay_devservers.sftp import AsyncsshSftp
from relay_devservers.smtp import SmtpCapture
from relay_devservers.webhooks import WebhookReceiver

DEMO_PORTS = {"smtp": 17025, "sftp": 17022, "s3": 17333, "azurite": 17000, "hooks": 17099}
DEMO_BUCKET = "demo-orders"
DEMO_CONTAINER = "demo-orders"


class DemoPortBusyError(RuntimeError):
    """A fixed demo port is held by another process (another ``make run``?)."""


@dataclass
class DemoDestinations:
    """SMTP capture (``mail/``), SFTP (``sftp/``), SeaweedFS S3, Azurite (when Node is present) and a webhook
    receiver (``hooks/``), all under ``root`` (``var/dev``)."""

    root: Path
    say: Callable[[str], None]
    smtp: SmtpCapture | None = None
    sftp: AsyncsshSftp | None = None
    s3: SeaweedS3 | None = None
    azurite: AzuriteBlob | None = None
    hooks: WebhookReceiver | None = None
    env: dict[str, str] = field(default_factory=dict)

    def _secrets(self) -> dict[str, str]:
        path = self.root / "demo-secrets.json"
        if not path.exists():
            made = {
                "sftp_password": secrets.token_urlsafe(18),
                "s3_access_key": "demo" + secrets.token_hex(8),
                "s3_secret_key": secrets.token_urlsafe(30),
            }
            path.write_text(json.dumps(made))
            path.chmod(0o600)
        loaded: dict[str, str] = json.loads(path.read_text())
        return loaded

    async def start(self) -> dict[str, str]:
        """Start every demo server; returns the environment the services need to reach them."""
        busy = [f"{name} {port}" for name, port in DEMO_PORTS.items() if port_answers(port)]
        if busy:
            raise DemoPortBusyError(f"demo ports in use: {', '.join(busy)} (another `make run`?); use --no-demo")
        made = self._secrets()
        self.smtp = SmtpCapture(self.root, port=DEMO_PORTS["smtp"], mail_dir=self.root / "mail").start()
        self.say(f"demo SMTP capture on 127.0.0.1:{DEMO_PORTS['smtp']}, messages in {self.smtp.maildir}/new")
        self.sftp = AsyncsshSftp(self.root / "sftp", password=made["sftp_password"], port=DEMO_PORTS["sftp"])
        await self.sftp.start()
        self.say(f"demo SFTP server on 127.0.0.1:{DEMO_PORTS['sftp']}, files in {self.root / 'sftp'}")
        self.s3 = SeaweedS3(
            self.root, access_key=made["s3_access_key"], secret_key=made["s3_secret_key"], s3_port=DEMO_PORTS["s3"]
        ).start()
        self.s3.create_bucket(DEMO_BUCKET)
        self.say(f"demo S3 (SeaweedFS) at {self.s3.endpoint_url}, bucket {DEMO_BUCKET}")
        self.hooks = await WebhookReceiver(port=DEMO_PORTS["hooks"], record_dir=self.root / "hooks").start()
        self.say(f"demo Zapier hook receiver at {self.hooks.url('')}, requests in {self.root / 'hooks'}")
        self.env = {
            "DEMO_SFTP_PASSWORD": made["sftp_password"],
            "DEMO_S3_ACCESS_KEY": made["s3_access_key"],
            "DEMO_S3_SECRET_KEY": made["s3_secret_key"],
            "DELIVER_EMAIL_SMTP_HOST": "127.0.0.1",
            "DELIVER_EMAIL_SMTP_PORT": str(DEMO_PORTS["smtp"]),
            "DELIVER_EMAIL_SMTP_SECURITY": "none",
            "NOTIFIER_SMTP_HOST": "127.0.0.1",
            "NOTIFIER_SMTP_PORT": str(DEMO_PORTS["smtp"]),
            "NOTIFIER_SMTP_START_TLS": "false",
        }
        if self._azurite_available():
            self.azurite = AzuriteBlob(self.root, port=DEMO_PORTS["azurite"]).start()
            self.azurite.create_container(DEMO_CONTAINER)
            self.env["DEMO_AZURE_CONNECTION_STRING"] = self.azurite.sas_connection_string
            self.say(f"demo Azure Blob (Azurite) at {self.azurite.blob_endpoint}, container {DEMO_CONTAINER}")
        else:
            self.say("Azurite not installed (needs Node.js and `make node-deps`): Azure deliveries will fail")
        return self.env

    @staticmethod
    def _azurite_available() -> bool:
        if shutil.which("node") is None:
            return False
        try:
            azurite_binary()
        except RuntimeError:
            return False
        return True

    async def stop(self) -> None:
        if self.hooks is not None:
            await self.hooks.stop()
        if self.sftp is not None:
            await self.sftp.stop()
        for server in (self.azurite, self.s3, self.smtp):
            if server is not None:
                server.stop()
