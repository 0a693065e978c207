"""A real SMTP server (aiosmtpd) on loopback that captures every message into a Maildir, for tests and `make run`.

The server runs as its own process (``python -m relay_devservers.smtp``): aiosmtpd emits deprecation warnings
on its connection path, which pytest's ``filterwarnings = error`` would turn into dropped connections if it
ran inside the test process.
"""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import os
import secrets
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from relay_devservers.processes import ServerProcess, free_port

_PASSWORD_ENV = "RELAY_SMTP_CAPTURE_PASSWORD"  # noqa: S105 - the variable holding it, not a password


@dataclass(frozen=True)
class CapturedMail:
    """One received message: envelope (from the ``X-Envelope-*`` headers the server adds) and raw bytes."""

    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed: EmailMessage = message_from_bytes(self.data, policy=policy.default)
        return parsed

    @property
    def rcpt_tos(self) -> list[str]:
        return [r.strip() for r in str(self.message.get("X-Envelope-To", "")).split(",") if r.strip()]

    @property
    def mail_from(self) -> str:
        return str(self.message.get("X-Envelope-From", ""))

    def attachments(self) -> dict[str, bytes]:
        """``{file name: decoded bytes}`` of every attachment."""
        found: dict[str, bytes] = {}
        for part in self.message.iter_attachments():
            name = part.get_filename()
            payload = part.get_payload(decode=True)
            if name is not None and isinstance(payload, bytes):
                found[name] = payload
        return found


@dataclass
class SmtpCapture:
    """An aiosmtpd server process on ``127.0.0.1:port`` writing every message to ``maildir``.

    With ``username``/``password`` the server offers AUTH (PLAIN/LOGIN without TLS: loopback only) and
    refuses mail without it; wrong credentials get ``535``. ``start()`` returns once the port answers;
    ``stop()`` ends the process. ``messages()`` reads the Maildir (a person can read it too, in ``make run``).
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    username: str | None = None
    password: str | None = None
    server: ServerProcess | None = None
    # Where messages go; by default a folder of ``workdir`` named after the port.
    mail_dir: Path | None = None

    @property
    def maildir(self) -> Path:
        return self.mail_dir or self.workdir / f"smtp-{self.port}" / "maildir"

    def start(self) -> SmtpCapture:
        self.maildir.parent.mkdir(parents=True, exist_ok=True)
        mailbox.Maildir(self.maildir, create=True)
        argv = [sys.executable, "-m", "relay_devservers.smtp", "--port", str(self.port), "--maildir", str(self.maildir)]
        env = dict(os.environ)
        if self.username is not None:
            argv += ["--username", self.username]
            env[_PASSWORD_ENV] = self.password or ""
        self.server = ServerProcess("smtp-capture", argv, log_path=self.workdir / f"smtp-{self.port}.log", env=env)
        self.server.wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def messages(self) -> list[CapturedMail]:
        """Every message received so far, oldest first."""
        box = mailbox.Maildir(self.maildir, create=False)
        keyed = sorted(box.iterkeys())
        return [CapturedMail(box.get_bytes(key)) for key in keyed]

    def find(self, predicate: Callable[[CapturedMail], bool]) -> list[CapturedMail]:
        return [m for m in self.messages() if predicate(m)]

    def wait_for(self, predicate: Callable[[CapturedMail], bool], *, timeout: float = 30.0) -> CapturedMail:
        """The first received message matching ``predicate``, polling until ``timeout`` (``TimeoutError``)."""
        deadline = time.monotonic() + timeout
        while not (found := self.find(predicate)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching e-mail captured within {timeout}s")
            time.sleep(0.05)
        return found[0]

    async def wait_for_async(
        self, predicate: Callable[[CapturedMail], bool], *, deadline_s: float = 30.0
    ) -> CapturedMail:
        """``wait_for`` without blocking the event loop."""
        async with asyncio.timeout(deadline_s):
            # Messages arrive in another process: poll the Maildir.
            while not (found := self.find(predicate)):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        return found[0]


# --- the server process ----------------------------------------------------------------------------------------


def _serve(port: int, maildir: Path, username: str | None, password: str | None) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

    box = mailbox.Maildir(maildir, create=True)

    class Handler:
        async def handle_MAIL(  # noqa: N802
            self, _server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
        ) -> str:
            if username is not None and not session.authenticated:
                return "530 5.7.0 Authentication required"
            envelope.mail_from = address
            envelope.mail_options.extend(options)
            return "250 OK"

        async def handle_DATA(self, _server: Any, _session: Session, envelope: Envelope) -> str:  # noqa: N802
            content = envelope.original_content or b""
            headers = (
                f"X-Envelope-From: {envelope.mail_from}\r\n"
                f"X-Envelope-To: {', '.join(str(r) for r in envelope.rcpt_tos)}\r\n"
            ).encode()
            box.add(headers + content)
            return "250 OK captured"

    def authenticate(
        _server: Any, _session: Session, _envelope: Envelope, _mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and username is not None
            and secrets.compare_digest(auth_data.login, username.encode())
            and secrets.compare_digest(auth_data.password, (password or "").encode())
        )
        return AuthResult(success=ok, handled=False)

    kwargs: dict[str, Any] = {"server_hostname": "relay-smtp-capture"}
    if username is not None:
        kwargs.update(authenticator=authenticate, auth_require_tls=False)
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        asyncio.run(_wait_for_termination())
    finally:
        controller.stop()


async def _wait_for_termination() -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="SMTP capture server writing every message to a Maildir.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    parser.add_argument("--username", default=None, help=f"require AUTH; password from ${_PASSWORD_ENV}")
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)  # aiosmtpd's own Session.login_data deprecation
    _serve(args.port, args.maildir, args.username, os.environ.get(_PASSWORD_ENV))


if __name__ == "__main__":
    main()
