"""What the batch commands (``relay replay``, ``relay sync associations``) share at the terminal: Ctrl-C once
stops after the batch in flight, twice at once; a wait (pacing, ``Retry-After``) ends early when a stop is asked
for; a progress bar only on a terminal, whose line also says why the command is waiting."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TaskID, TextColumn, TimeElapsedColumn


class GracefulStop:
    """A ``with`` block in which SIGINT asks the running task to stop after its current batch (``requested``), and
    a second SIGINT cancels it. Outside the main thread (tests), or without signal support, Ctrl-C stays a plain
    ``KeyboardInterrupt``."""

    def __init__(self, console: Console, message: str) -> None:
        self._console = console
        self._message = message
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[object] | None = None

    @property
    def requested(self) -> bool:
        return self._stop.is_set()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when a stop is asked for: nothing is in flight during a wait."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _interrupted(self) -> None:
        if self._stop.is_set() and self._task is not None:
            self._task.cancel()
            return
        self._stop.set()
        self._console.print(self._message)

    def __enter__(self) -> GracefulStop:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        try:
            loop.add_signal_handler(signal.SIGINT, self._interrupted)
        except (ValueError, RuntimeError, NotImplementedError):
            return self  # not the main thread (tests) or no signal support
        self._loop = loop
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGINT)
            self._loop = None


def batch_progress(console: Console, *extra: ProgressColumn) -> Progress:
    """A bar of done/total with the elapsed time (and ``extra`` columns), disabled when the output is not a
    terminal: piped or in CI, the summary says it all."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def show_wait(progress: Progress, bar: TaskID, console: Console, text: str) -> None:
    """Say why the command waits: on the bar's line on a terminal, else as a line of its own."""
    if progress.disable:
        # As written: no markup read into it, no wrapping of a long reason.
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    else:
        progress.update(bar, description=text)
