"""The real process: ``python -m relay_ingest_api`` serves /healthz and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from relay_devservers.processes import free_port
from relay_testing.shared_secrets import secrets_env

pytestmark = pytest.mark.integration


async def test_module_entrypoint_serves_health(kafka_bootstrap: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        **secrets_env(),
        "INGEST_API_PORT": str(port),
        "INGEST_API_TENANTS_FILE": str(Path(__file__).parent.parent / "tenants.yaml"),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "OBJECT_STORE_URL": f"file://{tmp_path}",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "relay_ingest_api"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        async with aiohttp.ClientSession() as session, asyncio.timeout(30):
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    assert process.returncode == 0, stderr.decode()[-2000:]
