"""Real SFTP servers on loopback: OpenSSH's sshd (internal-sftp, a real system user) and asyncssh's server.

Both accept password and public-key logins and present their own host key, so clients can (and must) verify
it. Used by the ``make run`` demo (asyncssh) and by the test fixtures ``openssh_sftp`` / ``asyncssh_sftp``
(``relay_testing.fixtures``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from relay_devservers.processes import ServerProcess, free_port

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class SftpAccount:
    """How to log in, and where uploads land on the server's disk.

    ``host_public_key`` is the server's host key in OpenSSH form (what ``known-host-key`` holds);
    ``client_private_key`` is an OpenSSH-format private key that the server accepts for ``username``.
    Relative remote paths resolve under ``root``.
    """

    host: str
    port: int
    username: str
    password: str
    client_private_key: str
    host_public_key: str
    root: Path


def _keypair() -> tuple[str, str]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return key.export_private_key("openssh").decode(), key.export_public_key("openssh").decode().strip()


# --- OpenSSH ---------------------------------------------------------------------------------------------------


@dataclass
class OpenSshSftp:
    """``sshd`` on ``127.0.0.1:port`` that only speaks SFTP (``ForceCommand internal-sftp -d <root>``).

    Needs root (it creates the system user ``username`` with ``useradd`` and sets its password) and the
    Debian package ``openssh-server``. The server's files live in a fresh directory under ``/tmp``
    (``ChrootDirectory`` would refuse it, so the user is confined by the forced command, not a chroot).
    """

    username: str = "relaysftp"
    password: str = field(default_factory=lambda: "pw-" + os.urandom(8).hex())
    port: int = field(default_factory=free_port)
    workdir: Path | None = None
    server: ServerProcess | None = None
    account: SftpAccount | None = None

    def start(self) -> SftpAccount:
        if not Path(SSHD).is_file():
            raise RuntimeError(f"{SSHD} not found: install the OpenSSH server (apt-get install -y openssh-server)")
        if os.geteuid() != 0:
            raise RuntimeError("the OpenSSH SFTP server needs root (it creates a system user and runs sshd)")
        self._ensure_user()
        workdir = Path(tempfile.mkdtemp(prefix="relay-sshd-", dir="/tmp"))
        workdir.chmod(0o755)  # the user's sftp session must reach its root below
        self.workdir = workdir
        root = workdir / "root"
        root.mkdir()
        user = pwd.getpwnam(self.username)
        os.chown(root, user.pw_uid, user.pw_gid)
        host_private, host_public = _keypair()
        client_private, client_public = _keypair()
        host_key = workdir / "ssh_host_ed25519_key"
        host_key.write_text(host_private)
        host_key.chmod(0o600)
        authorized = workdir / "authorized_keys"
        authorized.write_text(client_public + "\n")
        authorized.chmod(0o644)
        config = workdir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {workdir / 'sshd.pid'}",
                    "UsePAM no",
                    "PasswordAuthentication yes",
                    "PubkeyAuthentication yes",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin no",
                    f"AuthorizedKeysFile {authorized}",
                    "StrictModes no",
                    f"AllowUsers {self.username}",
                    "MaxStartups 50",
                    "LogLevel VERBOSE",
                    "Subsystem sftp internal-sftp",
                    f"ForceCommand internal-sftp -d {root}",
                    "",
                ]
            )
        )
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation directory
        self.server = ServerProcess("sshd", [SSHD, "-D", "-e", "-f", str(config)], log_path=workdir / "sshd.log")
        self.server.wait_for_port(self.port)
        self.account = SftpAccount(
            "127.0.0.1", self.port, self.username, self.password, client_private, host_public, root
        )
        return self.account

    def _ensure_user(self) -> None:
        try:
            pwd.getpwnam(self.username)
        except KeyError:
            subprocess.run(
                ["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh", self.username],
                check=True,
                capture_output=True,
            )
        subprocess.run(["chpasswd"], input=f"{self.username}:{self.password}\n", text=True, check=True)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


# --- asyncssh --------------------------------------------------------------------------------------------------


class _PasswordServer(asyncssh.SSHServer):
    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password

    def begin_auth(self, username: str) -> bool:  # noqa: ARG002 - asyncssh hook signature
        return True  # always ask: no anonymous logins

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == self._username and password == self._password


@dataclass
class AsyncsshSftp:
    """asyncssh's SFTP server on ``127.0.0.1:port`` in the current event loop, chrooted to ``root``.

    No root privileges needed; the embedded default for ``make run``. ``await start()`` / ``await stop()``.
    """

    root: Path
    username: str = "relay"
    password: str = field(default_factory=lambda: "pw-" + os.urandom(8).hex())
    port: int = field(default_factory=free_port)
    _server: asyncssh.SSHAcceptor | None = None

    async def start(self) -> SftpAccount:
        self.root.mkdir(parents=True, exist_ok=True)
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_private, client_public = _keypair()
        root = str(self.root)
        username, password = self.username, self.password
        self._server = await asyncssh.listen(
            "127.0.0.1",
            self.port,
            server_host_keys=[host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(client_public + "\n"),
            server_factory=lambda: _PasswordServer(username, password),
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root.encode()),
            allow_scp=False,
        )
        return SftpAccount(
            "127.0.0.1",
            self.port,
            self.username,
            self.password,
            client_private,
            host_key.export_public_key("openssh").decode().strip(),
            self.root,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
