"""Which integrations are paused, as a deliverer knows it: per (tenant, integration) the newest change read from
``integrations.control.v1`` (``control.ControlReader`` feeds it), and whether that topic has been read up to where
it stood at start. Broker-free, so the use case (``service``) can ask it."""

from __future__ import annotations

import asyncio
import logging

from relay_contracts.messages import IntegrationStateChanged
from relay_contracts.topics import INTEGRATIONS_CONTROL

logger = logging.getLogger("relay.delivery.control")


class IntegrationStates:
    """The newest known change of each integration, and whether the topic has been read up to where it stood at
    start. Read and written on the event loop only (no lock needed)."""

    def __init__(self) -> None:
        self._changes: dict[tuple[str, str], IntegrationStateChanged] = {}
        self._caught_up = asyncio.Event()
        self._deadline: float | None = None
        self._gave_up = False

    def apply(self, change: IntegrationStateChanged) -> bool:
        """Keep ``change`` unless a change at least as new is known (the retry service's rule, so both agree);
        True when it was kept."""
        key = (change.tenant, change.integration_id)
        current = self._changes.get(key)
        if current is not None and change.changed_at <= current.changed_at:
            return False
        self._changes[key] = change
        return True

    def paused(self, tenant: str, integration_id: str) -> bool:
        change = self._changes.get((tenant, integration_id))
        return change is not None and change.state == "paused"

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    def mark_caught_up(self) -> None:
        self._caught_up.set()

    async def wait_caught_up(self, timeout_s: float) -> None:
        """Return once the topic was read up to its end offsets at start, or ``timeout_s`` after the first call
        (every caller shares that one deadline; once passed, nobody waits again)."""
        if self._caught_up.is_set() or self._gave_up:
            return
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            self._deadline = loop.time() + timeout_s
        try:
            async with asyncio.timeout_at(self._deadline):
                await self._caught_up.wait()
        except TimeoutError:
            if not self._gave_up:
                self._gave_up = True
                logger.warning(
                    "%s not read up to its end after %gs; delivering with the integration states read so far",
                    INTEGRATIONS_CONTROL,
                    timeout_s,
                )
