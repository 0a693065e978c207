"""`make run`'s whole suite for benchmarks: ``relay dev``'s DevStack (durable Tansu, every service as its own
process) with the demo tenant of ``config/dev.yaml`` and its destinations, every port free rather than fixed, all
data in a temporary directory; plus /proc readings (CPU time, RSS) of the processes it started."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from aiohttp import web

from relay_cli.dev import DevStack, discover_services
from relay_devservers.azurite import AzuriteBlob, azurite_binary
from relay_devservers.processes import free_port
from relay_devservers.seaweedfs import SeaweedS3
from relay_devservers.sftp import AsyncsshSftp
from relay_devservers.smtp import SmtpCapture
from relay_devservers.webhooks import WebhookReceiver

ROOT = Path(__file__).resolve().parents[1]
DEV_CONFIG = ROOT / "config" / "dev.yaml"
DEMO_TENANT = "demo"
DEMO_API_KEY = "demo-key"  # config/dev.yaml's demo key (only its hash is in the file)
DEMO_BUCKET = "demo-orders"
DEMO_CONTAINER = "demo-orders"
SERVICES = discover_services(ROOT)
# Settings a benchmark stack must not inherit from the caller's shell (they would point it at other servers).
_UNINHERITED = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "RELAY_TENANTS_FILE",
    "OBJECT_STORE_URL",
    "LINKS_SIGNING_KEY",
    "ASSOCIATION_STORE_API_TOKEN",
    "ASSOCIATION_STORE_DATABASE_URL",
    "RETRY_DATABASE_URL",
    "NOTIFIER_DATABASE_URL",
)
CLOCK_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def clean_environment() -> None:
    """Drop inherited settings that would point the stack elsewhere (call before starting it)."""
    for name in _UNINHERITED:
        os.environ.pop(name, None)


def say(line: str) -> None:
    """Progress on stderr: stdout is kept for the figures."""
    sys.stderr.write(f"[e2e {time.strftime('%H:%M:%S')}] {line}\n")
    sys.stderr.flush()


# --- destinations -------------------------------------------------------------------------------------------------


@dataclass
class TimedHooks(WebhookReceiver):
    """The demo Zapier hook receiver, also noting when (``time.monotonic``) the first request for each order
    number arrived: the demo receiver keeps no arrival times."""

    arrivals: dict[str, float] = field(default_factory=dict)

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        response = await super()._handle(request)
        try:
            body: Any = json.loads(await request.read())  # aiohttp keeps the body read by the handler
        except ValueError:
            body = None
        number = body.get("orderNumber") if isinstance(body, dict) else None
        if isinstance(number, str):
            self.arrivals.setdefault(number, arrived)
        return response


@dataclass
class BenchDestinations:
    """The demo tenant's five destinations as ``relay_cli.demo.DemoDestinations`` starts them (SMTP capture,
    asyncssh SFTP, SeaweedFS S3, Azurite when Node is present, the webhook receiver), on free ports."""

    root: Path
    smtp: SmtpCapture | None = None
    sftp: AsyncsshSftp | None = None
    s3: SeaweedS3 | None = None
    azurite: AzuriteBlob | None = None
    hooks: TimedHooks | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def sftp_root(self) -> Path:
        return self.root / "sftp"

    async def start(self) -> dict[str, str]:
        """Start every server; returns the environment the services need to reach them."""
        sftp_password = secrets.token_urlsafe(18)
        access_key, secret_key = "demo" + secrets.token_hex(8), secrets.token_urlsafe(30)
        self.smtp = SmtpCapture(self.root, mail_dir=self.root / "mail").start()
        self.sftp = AsyncsshSftp(self.sftp_root, password=sftp_password)
        await self.sftp.start()
        self.s3 = SeaweedS3(self.root, access_key=access_key, secret_key=secret_key).start()
        self.s3.create_bucket(DEMO_BUCKET)
        self.hooks = TimedHooks()
        await self.hooks.start()
        self.env = {
            "DEMO_SFTP_PASSWORD": sftp_password,
            "DEMO_S3_ACCESS_KEY": access_key,
            "DEMO_S3_SECRET_KEY": secret_key,
            "DELIVER_EMAIL_SMTP_HOST": "127.0.0.1",
            "DELIVER_EMAIL_SMTP_PORT": str(self.smtp.port),
            "DELIVER_EMAIL_SMTP_SECURITY": "none",
            "NOTIFIER_SMTP_HOST": "127.0.0.1",
            "NOTIFIER_SMTP_PORT": str(self.smtp.port),
            "NOTIFIER_SMTP_START_TLS": "false",
        }
        if _azurite_available():
            self.azurite = AzuriteBlob(self.root).start()
            self.azurite.create_container(DEMO_CONTAINER)
            self.env["DEMO_AZURE_CONNECTION_STRING"] = self.azurite.sas_connection_string
        else:
            say("Azurite not installed (needs Node.js and `make node-deps`): Azure deliveries will fail")
        return self.env

    def tenants_file(self, path: Path) -> Path:
        """``config/dev.yaml`` with the demo tenant's SFTP port, S3 endpoint and hook URL pointed at these servers."""
        assert self.sftp is not None
        assert self.s3 is not None
        assert self.hooks is not None
        config: dict[str, Any] = yaml.safe_load(DEV_CONFIG.read_text())
        seen: set[str] = set()
        for integration in config["tenants"][DEMO_TENANT]["integrations"]:
            kind = integration["type"]
            if kind == "sftp":
                integration["port"] = self.sftp.port
            elif kind == "s3":
                integration["endpoint-url"] = self.s3.endpoint_url
            elif kind == "zapier":
                hook = urlsplit(integration["hook-url"])
                integration["hook-url"] = urlunsplit(hook._replace(netloc=f"127.0.0.1:{self.hooks.port}"))
            seen.add(kind)
        missing = {"sftp", "s3", "zapier"} - seen
        if missing:
            raise RuntimeError(f"{DEV_CONFIG}: the demo tenant has no {', '.join(sorted(missing))} integration")
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def processes(self) -> dict[str, int]:
        """PIDs of the destination servers that run as processes of their own."""
        found = {}
        for name, server in (("smtp", self.smtp), ("s3", self.s3), ("azurite", self.azurite)):
            process = getattr(server, "server", None)
            if process is not None:
                found[name] = process.pid
        return found

    async def stop(self) -> None:
        if self.hooks is not None:
            await self.hooks.stop()
        if self.sftp is not None:
            await self.sftp.stop()
        for server in (self.azurite, self.s3, self.smtp):
            if server is not None:
                server.stop()


def _azurite_available() -> bool:
    if shutil.which("node") is None:
        return False
    try:
        azurite_binary()
    except RuntimeError:
        return False
    return True


# --- the stack ----------------------------------------------------------------------------------------------------


@dataclass
class BenchStack(DevStack):
    """``relay dev``'s stack with its output in ``log_path``, every port free (DevStack prefers 8081 for the
    association store's internal API), and ``extra_env`` (tenants file, destinations) given to every service."""

    log_path: Path = field(default_factory=lambda: Path(os.devnull))
    extra_env: dict[str, str] = field(default_factory=dict)

    def say(self, source: str, line: str, colour: str = "1") -> None:  # noqa: ARG002 (DevStack's signature)
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write("".join(f"{source:>20} | {part}\n" for part in line.rstrip("\n").split("\n")))

    def environment(self, bootstrap: str) -> dict[str, str]:
        env = super().environment(bootstrap)
        association_port = free_port()
        return (
            env
            | self.extra_env
            | {
                "INGEST_API_ASSOCIATION_STORE_URL": f"http://127.0.0.1:{association_port}",
                "ASSOCIATION_STORE_HTTP_PORT": str(association_port),
            }
        )

    def broker_pids(self) -> dict[str, int]:
        """Tansu and the SeaweedFS holding its data."""
        found = {}
        if self._broker is not None:
            for name, server in (("tansu", self._broker.broker), ("tansu-weed", self._broker.s3)):
                process = getattr(server, "server", None)
                if process is not None:
                    found[name] = process.pid
        return found

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def new_stack(var: Path, extra_env: dict[str, str]) -> BenchStack:
    return BenchStack(
        root=ROOT,
        var=var,
        api_port=free_port(),
        services=list(SERVICES),
        demo=False,  # BenchDestinations stand in for the demo servers, on free ports
        broker_port=free_port(),
        log_path=var / "stack.log",
        extra_env=extra_env,
    )


# --- /proc --------------------------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces), numbered from field 3 ("state").
    return text[text.rindex(")") + 2 :].split()


def process_group(leader: int) -> list[int]:
    """Live processes whose process group is ``leader`` (every server here is started in a session of its own)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[2]) == leader:
                members.append(int(entry.name))
    return members or [leader]


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids``, in seconds."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total * CLOCK_TICK_S


def rss_mb(pids: list[int]) -> float:
    """VmRSS of ``pids``, in MB (MiB)."""
    total_kb = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    seconds: dict[str, float]

    def since(self, before: CpuSnapshot) -> dict[str, float]:
        return {name: self.seconds[name] - before.seconds.get(name, 0.0) for name in self.seconds}


def snapshot(groups: dict[str, list[int]]) -> CpuSnapshot:
    """CPU seconds used so far by each named group of processes."""
    return CpuSnapshot(time.monotonic(), {name: cpu_seconds(pids) for name, pids in groups.items()})
