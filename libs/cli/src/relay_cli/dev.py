"""``relay dev``: the whole suite on one machine on embedded defaults (durable Tansu, SQLite, local directories)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from relay_cli.demo import DemoDestinations
from relay_devservers.kafka import DurableTansu
from relay_devservers.processes import free_port, port_answers
from relay_devservers.webhooks import WebhookReceiver
from relay_platform.broker import ensure_topics
from relay_platform.shared_secret import new_shared_secret, secret_problem

# A service restarted more than this often within the window is not coming up: stop the suite and say so.
MAX_RESTARTS = 4
RESTART_WINDOW_S = 60.0
_COLOURS = ("36", "32", "33", "35", "34", "91", "92", "93", "94", "95", "96")


def discover_services(root: Path) -> list[str]:
    """Every folder under ``services/`` with a pyproject is a service to start."""
    return sorted(p.parent.name for p in (root / "services").glob("*/pyproject.toml"))


def module_of(service: str) -> str:
    return "relay_" + service.replace("-", "_")


@dataclass
class DevStack:
    """Starts the broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` is set), creates topics, runs every service as
    its own OS process with prefixed logs, and stops everything it started by PID.

    The broker keeps its data in ``var/dev/broker`` (Tansu on a SeaweedFS of its own), so what was accepted
    before a stop is still there at the next start: topics, unconsumed messages, consumer-group offsets.
    ``broker_port`` pins its Kafka port; by default 9092 when free, else the port it had last time.
    ``log_path`` sends the prefixed output to that file instead of the terminal (tests, a background run);
    ``default_ports=False`` puts the association store on a free port rather than on 8081 when that is free, so
    stacks started side by side (tests) never race for it."""

    root: Path
    var: Path
    api_port: int = 8080
    services: list[str] = field(default_factory=list)
    demo: bool = True
    broker_port: int | None = None
    log_path: Path | None = None
    default_ports: bool = True
    _demo: DemoDestinations | None = None
    _broker: DurableTansu | None = None
    _children: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    _pumps: list[asyncio.Task[None]] = field(default_factory=list)
    _env: dict[str, str] = field(default_factory=dict)
    # Each service's ops port (/healthz /readyz /metrics): ten processes on one machine cannot all take 9100.
    _ops_ports: dict[str, int] = field(default_factory=dict)
    _colour: bool = field(default_factory=sys.stdout.isatty)

    def say(self, source: str, line: str, colour: str = "1") -> None:
        prefix = f"{source:>20} | "
        lines = line.rstrip("\n").split("\n")
        if self.log_path is not None:
            with self.log_path.open("a", encoding="utf-8") as log:
                log.write("".join(prefix + part + "\n" for part in lines))
            return
        if self._colour:
            prefix = f"\x1b[{colour}m{prefix}\x1b[0m"
        sys.stdout.write("".join(prefix + part + "\n" for part in lines))
        sys.stdout.flush()

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` of ``log_path`` (empty without one): what to show when a check on the stack fails."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    @property
    def service_env(self) -> Mapping[str, str]:
        """The environment every service was started with (the demo servers' credentials included)."""
        return self._env

    @property
    def hooks(self) -> WebhookReceiver:
        """The demo Zapier hook receiver (started with the demo destinations)."""
        if self._demo is None or self._demo.hooks is None:
            raise RuntimeError("the demo destinations are not running")
        return self._demo.hooks

    def _secret(self, name: str) -> str:
        """A random secret kept in ``var/dev/<name>`` (owner-only), made on first use and kept across restarts so
        links already sent keep working; one the services would refuse (too short, a placeholder) is replaced."""
        path = self.var / "dev" / name
        if path.exists():
            value = path.read_text().strip()
            if secret_problem(value) is None:
                return value
            self.say("relay", f"replacing {path}: too weak for the services to accept")
        path.parent.mkdir(parents=True, exist_ok=True)
        value = new_shared_secret()
        # Created owner-only, never readable by others even for a moment; an existing file is narrowed too.
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            file.write(value)
        path.chmod(0o600)
        return value

    def environment(self, bootstrap: str) -> dict[str, str]:
        association_port = 8081 if self.default_ports and not port_answers(8081) else free_port()
        # One token on both sides of the association store's internal API (its only caller is the ingest API).
        association_token = os.environ.get("ASSOCIATION_STORE_API_TOKEN") or self._secret("association-store-token")
        return os.environ | {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "RELAY_TENANTS_FILE": os.environ.get("RELAY_TENANTS_FILE", str(self.root / "config" / "dev.yaml")),
            "RELAY_LOG_FORMAT": os.environ.get("RELAY_LOG_FORMAT", "text"),
            "OBJECT_STORE_URL": os.environ.get("OBJECT_STORE_URL", f"file://{self.var / 'objects'}"),
            "LINKS_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "LINKS_SIGNING_KEY": os.environ.get("LINKS_SIGNING_KEY") or self._secret("link-signing-key"),
            # The demo tenant's Shopify webhook secret (config/dev.yaml), for a store pointed at `make run`.
            "DEMO_SHOPIFY_WEBHOOK_SECRET": os.environ.get("DEMO_SHOPIFY_WEBHOOK_SECRET")
            or self._secret("shopify-webhook-secret"),
            "INGEST_API_PORT": str(self.api_port),
            "INGEST_API_ASSOCIATION_STORE_URL": f"http://127.0.0.1:{association_port}",
            "INGEST_API_ASSOCIATION_STORE_TOKEN": association_token,
            "ASSOCIATION_STORE_HTTP_PORT": str(association_port),
            "ASSOCIATION_STORE_API_TOKEN": association_token,
            "ASSOCIATION_STORE_DATABASE_URL": os.environ.get(
                "ASSOCIATION_STORE_DATABASE_URL", f"sqlite+aiosqlite:///{self.var / 'association-store.db'}"
            ),
            "RETRY_DATABASE_URL": os.environ.get("RETRY_DATABASE_URL", f"sqlite+aiosqlite:///{self.var / 'retry.db'}"),
            "NOTIFIER_DATABASE_URL": os.environ.get(
                "NOTIFIER_DATABASE_URL", f"sqlite+aiosqlite:///{self.var / 'notifier.db'}"
            ),
            "BUNDLE_BUILDER_RECIPE_BASE_URL": f"http://127.0.0.1:{self.api_port}/recipe/",
            "PYTHONUNBUFFERED": "1",
        }

    async def start(self) -> None:
        (self.var / "dev" / "logs").mkdir(parents=True, exist_ok=True)
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if bootstrap:
            self.say("relay", f"using the Kafka cluster at {bootstrap}")
        else:
            data = self.var / "dev" / "broker"
            self._broker = DurableTansu(data, log_dir=self.var / "dev" / "logs", port=self.broker_port)
            # Blocking on purpose: a Ctrl-C now lands after it, so stop() never races a half-started broker.
            self._broker.start()
            bootstrap = self._broker.bootstrap
            for server in (self._broker.s3, self._broker.broker):
                if server is not None and server.server is not None:
                    self.say("relay", f"started {server.server.name} (pid {server.server.pid})")
            self.say("relay", f"Kafka protocol at {bootstrap}, its data kept in {data}")
        await ensure_topics(bootstrap)
        self.say("relay", "topics ready")
        env = self.environment(bootstrap)
        if self.demo:
            self._demo = DemoDestinations(self.var / "dev", lambda line: self.say("demo", line))
            env |= await self._demo.start()
        self._env = env
        for service in self.services:
            await self._spawn(service)

    async def _spawn(self, service: str) -> None:
        # Kept across restarts, so a dashboard or curl pointed at a service keeps finding it.
        ops_port = self._ops_ports.setdefault(service, free_port())
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module_of(service),
            cwd=self.root,
            env=self._env | {"OPS_HOST": "127.0.0.1", "OPS_PORT": str(ops_port)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._children[service] = process
        colour = _COLOURS[self.services.index(service) % len(_COLOURS)]
        self._pumps.append(asyncio.create_task(self._pump(service, process, colour)))
        self.say("relay", f"started {service} (pid {process.pid})")

    def pid(self, service: str) -> int:
        """The PID (and process group) of ``service``'s running process."""
        return self._children[service].pid

    async def kill(self, service: str) -> None:
        """SIGKILL ``service``'s whole process group, as a crash would (for fault-injection tests)."""
        process = self._children[service]
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        self.say("relay", f"killed {service} (pid {process.pid})")

    async def restart(self, service: str) -> None:
        """Start ``service`` again with the environment it had (after ``kill`` or an exit)."""
        if self._children[service].returncode is None:
            raise RuntimeError(f"{service} is still running (pid {self._children[service].pid})")
        await self._spawn(service)

    async def _pump(self, service: str, process: asyncio.subprocess.Process, colour: str) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            self.say(service, raw.decode(errors="replace"), colour)

    async def wait_ready(self, within_s: float = 90.0) -> None:
        url = f"http://127.0.0.1:{self.api_port}/readyz"
        deadline = time.monotonic() + within_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                self.check_children()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.25)
        raise TimeoutError(f"the ingest API did not become ready at {url} within {within_s:.0f}s")

    def check_children(self) -> None:
        for service, process in self._children.items():
            if process.returncode is not None:
                raise RuntimeError(f"{service} exited with code {process.returncode}")

    def banner(self) -> str:
        api = f"http://127.0.0.1:{self.api_port}"
        return "\n".join(
            [
                f"Recipe Relay is up: {api}  (services: {', '.join(self.services)})",
                f"  try:  curl -s -X POST '{api}/api/v2/recipe/order?apikey=demo-key' \\",
                "          -H 'Content-Type: application/json' \\",
                '          -d \'[{"recipeId":"999-63CHGJokGoxPfSba","orderNumber":"1022","orderId":"6182665224482",'
                '"itemId":"1","itemQuantity":2}]\'',
                f"        curl -s '{api}/api/v2/orders?orderNumber=1022' -H 'Authorization: Bearer demo-key'",
                "  ops (/healthz /readyz /metrics): "
                + ", ".join(f"{service} http://127.0.0.1:{port}" for service, port in self._ops_ports.items()),
                "  Ctrl-C stops everything.",
            ]
        )

    async def run_until_stopped(self) -> int:
        """Keep the suite up until Ctrl-C: a service that exits is restarted (as an orchestrator would), unless
        it keeps failing, which means it cannot start (bad config, port taken): then the suite stops."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        exits: dict[str, list[float]] = {}
        while not stop.is_set():
            for service, process in list(self._children.items()):
                if process.returncode is None:
                    continue
                now = time.monotonic()
                recent = [t for t in exits.get(service, []) if now - t < RESTART_WINDOW_S] + [now]
                exits[service] = recent
                if len(recent) > MAX_RESTARTS:
                    self.say("relay", f"{service} exited {len(recent)} times in {RESTART_WINDOW_S:.0f} s; stopping")
                    return 1
                self.say("relay", f"{service} exited with code {process.returncode}; restarting it")
                await asyncio.sleep(min(2 ** (len(recent) - 1), 8))
                await self._spawn(service)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        return 0

    async def stop(self) -> None:
        for service, process in self._children.items():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                self.say("relay", f"stopping {service}")
        for process in self._children.values():
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        for pump in self._pumps:
            pump.cancel()
        if self._demo is not None:
            await self._demo.stop()
        if self._broker is not None:
            # Tansu first, then the SeaweedFS holding its data (given time to flush).
            self.say("relay", "stopping the broker")
            self._broker.stop()
        self.say("relay", "stopped")


async def run_dev(root: Path, var: Path, api_port: int, *, demo: bool = True) -> int:
    stack = DevStack(root=root, var=var, api_port=api_port, services=discover_services(root), demo=demo)
    try:
        await stack.start()
        await stack.wait_ready()
        stack.say("relay", stack.banner())
        return await stack.run_until_stopped()
    finally:
        await stack.stop()
