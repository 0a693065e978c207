"""Waiting for a condition in a test: poll it until it holds, or fail with what was awaited and what was last seen
(never a fixed sleep standing in for the condition)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], *, within: float, what: str, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy (returned), or fail naming ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    last: T | None = None
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:g}s: {what}; last seen {last!r}")
        await asyncio.sleep(interval)
