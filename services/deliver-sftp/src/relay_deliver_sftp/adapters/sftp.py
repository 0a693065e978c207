"""SFTP over asyncssh: connections kept per server and account, host keys verified, errors translated."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import asyncssh

from relay_deliver_sftp.domain import Upload
from relay_deliver_sftp.settings import SftpSettings
from relay_platform.errors import PermanentError, TransientError
from relay_platform.tenants import SftpIntegration

logger = logging.getLogger("relay.deliver_sftp.sftp")

# The connection is gone: reconnect once and redo the (idempotent) uploads.
_LOST = (asyncssh.ConnectionLost, asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection, BrokenPipeError)
# How long shutdown waits for each kept connection to close before dropping it.
_CLOSE_TIMEOUT_S = 5.0


def host_keys(integration: SftpIntegration) -> list[asyncssh.SSHKey]:
    """The trusted host key(s) from ``known-host-key``: OpenSSH public-key lines, optionally prefixed by a host
    pattern as in a known_hosts file."""
    keys: list[asyncssh.SSHKey] = []
    for raw in (integration.known_host_key or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for candidate in (line, line.split(None, 1)[-1]):
            try:
                keys.append(asyncssh.import_public_key(candidate))
                break
            except (asyncssh.KeyImportError, ValueError):
                continue
        else:
            raise PermanentError(f"known-host-key of integration {integration.id!r} is not an SSH public key")
    return keys


@dataclass(frozen=True, slots=True)
class _Account:
    host: str
    port: int
    username: str
    # Which secrets and host key the connection was made with (a digest; the values stay out of the key).
    fingerprint: str

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(slots=True)
class _Session:
    connection: asyncssh.SSHClientConnection
    sftp: asyncssh.SFTPClient


class SftpPool:
    """One SSH connection + SFTP session per (server, account, host key), opened on first use and reused by
    every later attempt (concurrent ones share it: SFTP pipelines requests)."""

    def __init__(self, settings: SftpSettings) -> None:
        self._settings = settings
        self._sessions: dict[_Account, _Session] = {}
        self._locks: dict[_Account, asyncio.Lock] = {}

    @staticmethod
    def _account(integration: SftpIntegration, password: str | None, private_key: str | None) -> _Account:
        digest = hashlib.sha256()
        for part in (password, private_key, integration.known_host_key, str(integration.insecure_accept_any_host_key)):
            digest.update((part or "").encode() + b"\x1f")
        return _Account(integration.host, integration.port, integration.username, digest.hexdigest())

    async def upload(self, integration: SftpIntegration, uploads: Sequence[Upload]) -> None:
        """Upload every file to a temporary name, then rename it over the final name."""
        password = integration.password.resolve().get_secret_value() if integration.password else None
        private_key = integration.private_key.resolve().get_secret_value() if integration.private_key else None
        account = self._account(integration, password, private_key)
        for last_try in (False, True):
            session = await self._session(account, integration, password, private_key)
            try:
                await self._upload_all(session.sftp, uploads, account)
            except _LOST as error:
                await self._drop(account)
                if last_try:
                    raise TransientError(f"SFTP connection to {account.where} lost: {type(error).__name__}") from error
                logger.info("SFTP connection to %s was lost; reconnecting", account.where)
                continue
            return

    async def _session(
        self, account: _Account, integration: SftpIntegration, password: str | None, private_key: str | None
    ) -> _Session:
        lock = self._locks.setdefault(account, asyncio.Lock())
        async with lock:
            session = self._sessions.get(account)
            if session is None or session.connection.is_closed():
                session = await self._connect(account, integration, password, private_key)
                self._sessions[account] = session
            return session

    async def _connect(
        self, account: _Account, integration: SftpIntegration, password: str | None, private_key: str | None
    ) -> _Session:
        trusted = host_keys(integration)
        if not trusted and not integration.insecure_accept_any_host_key:
            raise PermanentError(f"integration {integration.id!r} has no known-host-key")
        # A configured key is always checked; blind trust only when none is configured and it is asked for.
        known_hosts: tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], list[asyncssh.SSHKey]] | None = (
            (trusted, [], []) if trusted else None
        )
        client_keys = None
        if private_key is not None:
            try:
                client_keys = [asyncssh.import_private_key(private_key)]
            except (asyncssh.KeyImportError, ValueError) as error:
                raise PermanentError(
                    f"private-key of integration {integration.id!r} is not a usable unencrypted private key"
                ) from error
        s = self._settings
        try:
            connection = await asyncssh.connect(
                account.host,
                account.port,
                username=account.username,
                password=password,
                client_keys=client_keys,
                known_hosts=known_hosts,
                agent_path=None,
                config=None,
                connect_timeout=s.connect_timeout_s,
                login_timeout=s.login_timeout_s,
                keepalive_interval=s.keepalive_interval_s,
            )
        except asyncssh.HostKeyNotVerifiable as error:
            raise PermanentError(
                f"SFTP server {account.where} presented a host key that does not match known-host-key"
            ) from error
        except asyncssh.PermissionDenied as error:
            raise PermanentError(
                f"SFTP server {account.where} rejected the login of user {account.username!r} "
                "(wrong password or private key)"
            ) from error
        except asyncssh.DisconnectError as error:
            raise TransientError(f"SFTP server {account.where} disconnected: {error.reason}") from error
        except (OSError, TimeoutError) as error:
            detail = getattr(error, "strerror", None) or type(error).__name__
            raise TransientError(f"cannot connect to SFTP server {account.where}: {detail}") from error
        try:
            sftp = await connection.start_sftp_client()
        except asyncssh.ChannelOpenError as error:
            connection.close()
            raise PermanentError(f"SFTP server {account.where} refused the SFTP subsystem: {error.reason}") from error
        except _LOST as error:
            connection.close()
            raise TransientError(f"SFTP connection to {account.where} lost while opening") from error
        return _Session(connection, sftp)

    async def _upload_all(self, sftp: asyncssh.SFTPClient, uploads: Sequence[Upload], account: _Account) -> None:
        for directory in dict.fromkeys(u.directory for u in uploads):
            await self._sftp_op(f"create directory {directory!r}", account, sftp.makedirs(directory, exist_ok=True))
        for upload in uploads:
            try:
                await self._sftp_op(f"write {upload.temp_path!r}", account, self._write(sftp, upload))
                await self._sftp_op(f"rename to {upload.final_path!r}", account, self._replace(sftp, upload))
            except BaseException:
                with suppress(asyncssh.Error, OSError):
                    await sftp.remove(upload.temp_path)
                raise

    @staticmethod
    async def _write(sftp: asyncssh.SFTPClient, upload: Upload) -> None:
        async with sftp.open(upload.temp_path, "wb") as handle:
            await handle.write(upload.data)

    @staticmethod
    async def _replace(sftp: asyncssh.SFTPClient, upload: Upload) -> None:
        try:
            await sftp.posix_rename(upload.temp_path, upload.final_path)
        except asyncssh.SFTPOpUnsupported:
            # Plain SFTPv3 rename refuses to overwrite: remove the old file (a redelivery) first.
            with suppress(asyncssh.SFTPNoSuchFile):
                await sftp.remove(upload.final_path)
            await sftp.rename(upload.temp_path, upload.final_path)

    @staticmethod
    async def _sftp_op(what: str, account: _Account, operation: Awaitable[object]) -> None:
        try:
            await operation
        except _LOST:
            raise
        except (asyncssh.SFTPPermissionDenied, asyncssh.SFTPWriteProtect) as error:
            raise PermanentError(f"SFTP server {account.where} denied: {what}") from error
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath, asyncssh.SFTPNotADirectory) as error:
            raise PermanentError(f"SFTP server {account.where} has no such path: {what}") from error
        except (asyncssh.SFTPInvalidFilename, asyncssh.SFTPFileIsADirectory) as error:
            # Servers speaking SFTP v5+ say so when a name is invalid or too long there: the same name fails again.
            raise PermanentError(f"SFTP server {account.where} refused the name: {what}") from error
        except asyncssh.SFTPError as error:
            raise TransientError(f"SFTP server {account.where} failed to {what}: {error.reason}") from error

    async def _drop(self, account: _Account) -> None:
        session = self._sessions.pop(account, None)
        if session is not None:
            session.sftp.exit()
            session.connection.close()

    async def aclose(self) -> None:
        """Close every kept connection."""
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            session.sftp.exit()
            session.connection.close()
        for session in sessions:
            try:
                # A server that stopped reading keeps the close waiting for ever: shutdown must still end.
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await session.connection.wait_closed()
            except TimeoutError:
                session.connection.abort()
            except (asyncssh.Error, OSError):
                pass


@asynccontextmanager
async def sftp_pool(settings: SftpSettings) -> AsyncIterator[SftpPool]:
    """An ``SftpPool`` for the lifetime of the process."""
    pool = SftpPool(settings)
    try:
        yield pool
    finally:
        await pool.aclose()
