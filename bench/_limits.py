"""What the limit scripts (``bench/limits_*.py``) share: the figure lines ``bench/run.py`` reads, percentiles, the
broker ``make run`` uses (durable Tansu on its own SeaweedFS) on a free port, and child processes that answer in
JSON (servers and load generators run in processes of their own, never in the measuring one's event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


def say(tag: str, line: str) -> None:
    """Progress on stderr: stdout is kept for the figures."""
    sys.stderr.write(f"[{tag} {time.strftime('%H:%M:%S')}] {line}\n")
    sys.stderr.flush()


def figure(
    figure_id: str,
    label: str,
    value: float,
    unit: str,
    *,
    goal: str,
    better: str,
    limit_label: str | None = None,
    limit_value: float | None = None,
) -> dict[str, Any]:
    """One figure line as ``bench/run.py`` reads it."""
    return {
        "figure": figure_id,
        "label": label,
        "value": round(value, 3),
        "unit": unit,
        "limit_label": limit_label,
        "limit_value": None if limit_value is None else round(limit_value, 3),
        "goal": goal,
        "better": better,
    }


def emit(figures: Sequence[dict[str, Any]]) -> None:
    """The figures as the last lines of stdout, one JSON object per line; refuses a figure that is not a finite
    number (a broken measurement must fail the run, not print ``NaN``)."""
    for item in figures:
        for key in ("value", "limit_value"):
            number = item[key]
            if number is not None and not math.isfinite(number):
                raise RuntimeError(f"{item['figure']}: {key} is {number}")
    sys.stdout.write("".join(json.dumps(item) + "\n" for item in figures))
    sys.stdout.flush()


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between the closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process so far (0 once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * CLOCK_TICK_S


@contextlib.asynccontextmanager
async def durable_broker(
    workdir: Path, tag: str, *, memory: bool = False, partitions: Mapping[str, int] | None = None
) -> AsyncIterator[str]:
    """``make run``'s broker (``DurableTansu``: Tansu on ``s3://`` in a SeaweedFS of its own) on a free port, its
    data in ``workdir``, every topic of the suite created; yields the bootstrap address. ``memory``: Tansu with
    memory storage instead (``--memory-broker``, to see what the durable storage costs). ``partitions`` creates
    those topics with that many partitions first, as an operator who scales a consumer would (the rest get
    ``ensure_topics``' default)."""
    from relay_devservers.kafka import DurableTansu, TansuBroker
    from relay_devservers.processes import free_port
    from relay_platform.broker import ensure_topics

    started = time.monotonic()
    if memory:
        in_memory = TansuBroker(workdir)
        await asyncio.to_thread(in_memory.start)
        try:
            for topic, count in (partitions or {}).items():
                await ensure_topics(in_memory.bootstrap, (topic,), partitions=count)
            await ensure_topics(in_memory.bootstrap)
            took = time.monotonic() - started
            say(tag, f"Tansu (memory storage, not make run's) at {in_memory.bootstrap} in {took:.1f} s")
            yield in_memory.bootstrap
        finally:
            in_memory.stop()
        return
    broker = DurableTansu(workdir / "broker", log_dir=workdir / "logs", port=free_port())
    await asyncio.to_thread(broker.start)
    try:
        for topic, count in (partitions or {}).items():
            await ensure_topics(broker.bootstrap, (topic,), partitions=count)
        await ensure_topics(broker.bootstrap)
        say(tag, f"Tansu (durable, on SeaweedFS) at {broker.bootstrap} in {time.monotonic() - started:.1f} s")
        yield broker.bootstrap
    finally:
        # The data is thrown away: no need to give SeaweedFS its full flush time.
        broker.stop_broker()
        if broker.s3 is not None:
            broker.s3.stop(timeout=2.0)
        broker.stop()


def run_measurement(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, SIGTERM ending it like Ctrl-C: through the ``finally`` blocks, so every server it
    started is stopped (``bench/run.py`` sends SIGTERM to a script that runs past its time)."""

    async def guarded() -> T:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await main

    return asyncio.run(guarded())


def python_child(script: Path, *args: str) -> list[str]:
    """The argv of ``script`` run by this interpreter (the workspace's)."""
    return [sys.executable, str(script), *args]


async def run_child(argv: Sequence[str], *, env: dict[str, str] | None = None, timeout_s: float = 600.0) -> Any:
    """Run a child to its end and return the JSON of its last stdout line; its stderr passes through."""
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, env=env)
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await process.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:3])} exited with {process.returncode}")
    lines = out.decode().strip().splitlines()
    if not lines:
        raise RuntimeError(f"{' '.join(argv[1:3])} printed nothing")
    return json.loads(lines[-1])


class Child:
    """A long-running child process (a server) in its own process group, stopped with SIGTERM then SIGKILL."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process

    @classmethod
    async def start(cls, name: str, argv: Sequence[str], *, env: dict[str, str] | None, log: Path) -> Child:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                *argv, stdout=out, stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True
            )
        return cls(name, process)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_for_port(self, port: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.returncode is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not open port {port} within {timeout_s:g} s")
            await asyncio.sleep(0.1)

    async def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout_s):
                    await self.process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()
