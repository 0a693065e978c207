"""A local webhook receiver (aiohttp) that records every request and answers as scripted: 200 by default, or
429 with Retry-After, 500, 400... Stands in for Zapier catch hooks in tests and the `make run` demo."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from relay_devservers.processes import free_port


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as received: method, path, headers and raw body (``json()`` decodes it)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """A scripted answer."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = '{"status": "success"}'


@dataclass
class WebhookReceiver:
    """An aiohttp server on ``127.0.0.1:port`` (any path accepts POST) recording requests in ``received``.

    ``script(path, Reply(429, {"Retry-After": "2"}), ...)`` queues answers for that path, used once each in
    order; without a queued answer a request gets ``200``. ``url(path)`` builds a hook URL.
    ``await start()`` / ``await stop()`` run it on the current event loop; ``echo`` prints each request
    (``python -m relay_devservers.webhooks --port P`` runs one standalone that way).
    """

    port: int = field(default_factory=free_port)
    echo: bool = False
    # When set, each request is also written there as one JSON file (the `make run` demo: var/dev/hooks/).
    record_dir: Path | None = None
    received: list[ReceivedRequest] = field(default_factory=list)
    _scripts: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def script(self, path: str, *replies: Reply) -> None:
        self._scripts["/" + path.lstrip("/")].extend(replies)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self._changed:
            self.received.append(ReceivedRequest(request.method, request.path, dict(request.headers), body))
            self._changed.notify_all()
        if self.record_dir is not None:
            self._record(request, body)
        if self.echo:
            print(f"{request.method} {request.path} {body.decode(errors='replace')}", flush=True)  # noqa: T201
        queue = self._scripts.get(request.path)
        reply = queue.popleft() if queue else Reply()
        return web.Response(
            status=reply.status, headers=dict(reply.headers), text=reply.body, content_type="application/json"
        )

    def _record(self, request: web.Request, body: bytes) -> None:
        assert self.record_dir is not None
        self.record_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = body.decode(errors="replace")
        record = {"method": request.method, "path": request.path, "headers": dict(request.headers), "body": payload}
        (self.record_dir / f"{stamp}-{len(self.received):05d}.json").write_text(json.dumps(record, indent=2))

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def requests_to(self, path: str) -> list[ReceivedRequest]:
        wanted = "/" + path.lstrip("/")
        return [r for r in self.received if r.path == wanted]

    async def wait_for(
        self, predicate: Callable[[list[ReceivedRequest]], bool], *, deadline_s: float = 30.0
    ) -> list[ReceivedRequest]:
        """Wait until ``predicate(received)`` holds; returns ``received``."""
        async with asyncio.timeout(deadline_s), self._changed:
            await self._changed.wait_for(lambda: predicate(self.received))
            return self.received


async def _serve(port: int) -> None:
    receiver = await WebhookReceiver(port=port, echo=True).start()
    print(f"webhook receiver on {receiver.url('')}", flush=True)  # noqa: T201
    try:
        await asyncio.Event().wait()
    finally:
        await receiver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Local webhook receiver that answers 200 and logs requests.")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(_serve(args.port or free_port()))


if __name__ == "__main__":
    main()
