"""pytest fixtures (loaded from the root conftest): real servers started once per session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay_platform.broker import ensure_topics
from relay_testing.kafka import TansuBroker


@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def tansu(servers_dir: Path) -> Iterator[TansuBroker]:
    """A real Kafka-protocol broker with every Recipe Relay topic created."""
    broker = TansuBroker(servers_dir).start()
    try:
        asyncio.run(ensure_topics(broker.bootstrap))
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tansu: TansuBroker) -> str:
    return tansu.bootstrap
