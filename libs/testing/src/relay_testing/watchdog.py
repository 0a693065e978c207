"""pytest plugin: which fixture teardowns were slow, and what every asyncio task awaits when a test phase hangs.

pytest-timeout reports the frame the main thread happened to be in when it fired. In an asyncio test or teardown
that is whichever task the loop was running at that instant (often a Kafka consumer fetching in the background),
not the await everybody waits on. So a phase that runs past ``HANG_DUMP_AFTER_S`` (well before the 300 s timeout)
gets the stack of every pending task written to the real stderr, and the terminal summary lists each fixture whose
teardown took longer than ``SLOW_TEARDOWN_S``.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import sys
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import pytest

SLOW_TEARDOWN_S = 5.0
HANG_DUMP_AFTER_S = 200.0
_POLL_S = 2.0


@dataclass
class _Phase:
    """The test phase in progress, watched by one daemon thread for the whole session."""

    name: str = ""
    started: float = 0.0
    dumped: bool = True
    last_finalized: float = 0.0
    slow_teardowns: list[tuple[str, str, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, name: str) -> None:
        with self.lock:
            self.name, self.started, self.dumped = name, time.monotonic(), False
            self.last_finalized = self.started

    def end(self) -> None:
        with self.lock:
            self.dumped = True


_PHASE = _Phase()


def _watch() -> None:
    while True:
        time.sleep(_POLL_S)
        with _PHASE.lock:
            if _PHASE.dumped or time.monotonic() - _PHASE.started < HANG_DUMP_AFTER_S:
                continue
            _PHASE.dumped = True
            name = _PHASE.name
        _dump_tasks(name)


def _pending_tasks() -> list[asyncio.Task[Any]]:
    # asyncio.all_tasks() needs the loop, which belongs to the main thread; the module's registry of every task is
    # what a thread can read. It may change while read: try again.
    registry = getattr(asyncio.tasks, "_all_tasks", ())
    for _ in range(10):
        try:
            return [task for task in list(registry) if not task.done()]
        except RuntimeError:
            continue
    return []


def _awaited_frames(awaitable: object, limit: int = 40) -> list[str]:
    """The chain of awaits a suspended task is in, outermost first: ``Task.print_stack`` shows only the first frame
    of a suspended task, and a fixture's teardown awaits inside an async generator, which that would not show."""
    lines: list[str] = []
    current: object = awaitable
    while current is not None and len(lines) < limit:
        frame = getattr(current, "cr_frame", None) or getattr(current, "ag_frame", None)
        frame = frame or getattr(current, "gi_frame", None)
        awaited = getattr(current, "cr_await", None) or getattr(current, "ag_await", None)
        awaited = awaited or getattr(current, "gi_yieldfrom", None)
        if frame is not None:
            lines.append(f'  File "{frame.f_code.co_filename}", line {frame.f_lineno}, in {frame.f_code.co_name}')
        elif inspect.isawaitable(current) and not asyncio.isfuture(current):
            # ``agen.__anext__()`` hides its generator from these attributes; the garbage collector still sees it.
            awaited = next((ref for ref in gc.get_referents(current) if inspect.isasyncgen(ref)), None)
        if awaited is None:
            # A bare ``await future`` leaves an iterator over the future: name the future itself.
            waited_on = next(iter(gc.get_referents(current)), current) if frame is None else current
            lines.append(f"    waiting on {waited_on!r}"[:400])
        current = awaited
    return lines


def _dump_tasks(phase: str) -> None:
    out = sys.__stderr__
    if out is None:
        return
    print(f"\n===== {phase} still running after {HANG_DUMP_AFTER_S:.0f} s: pending asyncio tasks =====", file=out)
    for task in _pending_tasks():
        print(f"--- {task.get_name()}", file=out)
        try:
            for line in _awaited_frames(task.get_coro()):
                print(line, file=out)
        except Exception as error:  # noqa: BLE001 - a diagnostic must never break the run it describes
            print(f"    (stack unavailable: {error!r})", file=out)
    print("===== end of pending tasks =====", file=out, flush=True)


def pytest_sessionstart() -> None:
    threading.Thread(target=_watch, name="relay-test-watchdog", daemon=True).start()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    _PHASE.begin(f"setup of {item.nodeid}")
    try:
        return (yield)
    finally:
        _PHASE.end()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    _PHASE.begin(item.nodeid)
    try:
        return (yield)
    finally:
        _PHASE.end()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    _PHASE.begin(f"teardown of {item.nodeid}")
    try:
        return (yield)
    finally:
        _PHASE.end()


def pytest_fixture_post_finalizer(fixturedef: pytest.FixtureDef[Any]) -> None:
    # Fixtures are finalised one after another: the time since the previous one is this one's teardown.
    now = time.monotonic()
    with _PHASE.lock:
        took, _PHASE.last_finalized = now - _PHASE.last_finalized, now
        if took >= SLOW_TEARDOWN_S:
            _PHASE.slow_teardowns.append((fixturedef.argname, fixturedef.scope, took))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _PHASE.slow_teardowns:
        return
    terminalreporter.section(f"fixture teardowns slower than {SLOW_TEARDOWN_S:g} s")
    for argname, scope, took in sorted(_PHASE.slow_teardowns, key=lambda slow: -slow[2]):
        terminalreporter.write_line(f"{took:7.1f}s  {argname} ({scope})")
