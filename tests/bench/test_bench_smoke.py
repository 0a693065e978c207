"""``make bench`` cannot rot: its smoke run (every figure script of ``bench/``, each in its tiniest mode) ends well
and prints every figure, each finite and positive. Nothing about speed is asserted: the figures are only checked to
be there."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relay_devservers.azurite import azurite_binary

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").is_file())
# The figures issue 11 asks for that the scripts print today (more may be printed; none of these may be missing).
REQUIRED = {
    "e2e_throughput",
    "e2e_latency_p50",
    "e2e_latency_p99",
    "ingest_single_pct_of_bare",
    "ingest_batch100_pct_of_bare",
    "ingest_single_p99_ms",
    "hop_latency_p50",
    "hop_throughput",
    "ticket_render_ms",
    "bundle_build_ms",
    "deliver_s3_per_s",
    "deliver_sftp_per_s",
    "deliver_email_per_s",
    "deliver_zapier_per_s",
    "deliver_scaleout_x",
    *(f"idle_rss_mb_{service}" for service in SERVICES),
    *(f"cpu_ms_per_order_{service}" for service in SERVICES),
}

pytestmark = pytest.mark.integration


def _azurite_installed() -> bool:
    if shutil.which("node") is None:
        return False
    try:
        azurite_binary()
    except RuntimeError:
        return False
    return True


@pytest.mark.timeout(420)
def test_bench_smoke_run_prints_every_figure_finite_and_positive(tmp_path: Path) -> None:
    report = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--json", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    tail = done.stderr[-6000:]
    assert done.returncode == 0, f"bench/run.py --smoke exited {done.returncode}:\n{done.stdout}\n{tail}"
    runs = json.loads(report.read_text())["runs"]
    assert runs, "no script ran"
    printed: dict[str, dict[str, object]] = {}
    for run in runs:
        assert run["error"] is None, f"{run['script']}: {run['error']}\n{tail}"
        assert run["figures"], f"{run['script']} printed no figures"
        for item in run["figures"]:
            printed[item["figure"]] = item
    required = REQUIRED | ({"deliver_azure_blob_per_s"} if _azurite_installed() else set())
    missing = required - printed.keys()
    assert not missing, f"figures not printed: {sorted(missing)}"
    for figure_id, item in printed.items():
        value, limit = item["value"], item["limit_value"]
        assert isinstance(value, int | float), f"{figure_id}: value {value!r}"
        assert math.isfinite(value), f"{figure_id}: value {value}"
        assert value > 0, f"{figure_id}: value {value}"
        if limit is not None:
            assert isinstance(limit, int | float), f"{figure_id}: limit {limit!r}"
            assert math.isfinite(limit), f"{figure_id}: limit {limit}"
            assert limit > 0, f"{figure_id}: limit {limit}"
        assert item["goal"], f"{figure_id}: no goal"
