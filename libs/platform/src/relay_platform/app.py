"""The one lifecycle every Kafka service has: resources open before the consumers start and close after they stop.

``service_app`` builds the FastStream app around a broker:

1. ``resources(context)`` is entered (an async context manager: databases, object stores, clients, an internal
   HTTP API); what the handlers need goes into the FastStream context there (``context.set_global``);
2. the broker connects and the consumers start;
3. ``background`` tasks start (a scheduler); one that ends with an error stops the app, so it is restarted instead
   of running without it;
4. on SIGTERM: background tasks are cancelled, ``drain()`` lets in-flight handlers finish and publish while the
   broker is still up, the broker stops, then ``resources`` close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from functools import partial

from faststream import ContextRepo, FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

logger = logging.getLogger("relay.app")

OpenResources = Callable[[ContextRepo], AbstractAsyncContextManager[object]]
Background = Callable[[], Awaitable[None]]


def service_app(
    broker: KafkaBroker,
    *,
    resources: OpenResources | None = None,
    background: Sequence[tuple[str, Background]] = (),
    drain: Callable[[], Awaitable[None]] | None = None,
    specification: AsyncAPI | None = None,
) -> FastStream:
    """The FastStream app of a service; nothing connects until it runs (so ``faststream docs gen`` can import it).

    ``background`` names each long-running task (``("retry-scheduler", scheduler.run)``).
    """
    stack = AsyncExitStack()
    tasks: set[asyncio.Task[None]] = set()
    app: FastStream

    async def open_resources() -> None:
        if resources is not None:
            await stack.enter_async_context(resources(app.context))

    async def start_background() -> None:
        for name, run in background:
            task = asyncio.create_task(_run(run), name=name)
            task.add_done_callback(partial(_background_stopped, app=app))
            tasks.add(task)

    async def stop_background() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tasks.clear()
        if drain is not None:
            await drain()

    async def close_resources() -> None:
        await stack.aclose()

    app = FastStream(
        broker,
        on_startup=[open_resources],
        after_startup=[start_background],
        on_shutdown=[stop_background],
        after_shutdown=[close_resources],
        specification=specification,
    )
    return app


async def _run(run: Background) -> None:
    await run()


def _background_stopped(task: asyncio.Task[None], *, app: FastStream) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        # Without it the service would accept messages and never finish their work: stop, and be restarted.
        logger.critical("background task %s crashed; stopping the service", task.get_name(), exc_info=error)
        app.exit()
