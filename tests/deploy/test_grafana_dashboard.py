"""deploy/grafana/recipe-relay.json asks only for the metrics the services export, with the labels they carry.

METRICS and LABELS are the contract with the services' /metrics (prometheus-client adds `_total` to counters and
`_bucket` to histograms): a query naming anything else would draw an empty panel, silently.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from relay_platform import metrics as relay_metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD: dict[str, Any] = json.loads((ROOT / "deploy" / "grafana" / "recipe-relay.json").read_text(encoding="utf-8"))
METRICS = frozenset(
    {
        "relay_delivery_attempts_total",
        "relay_retry_backlog",
        "relay_consumer_lag",
        "relay_order_to_delivered_seconds_bucket",
        "relay_http_requests_total",
        "relay_http_request_duration_seconds_bucket",
        "relay_integrations_unhealthy",
        "relay_deliveries_held_total",
    }
)
# Labels the queries select or group by; `job` and `le` come from Prometheus and prometheus-client themselves.
LABELS = frozenset({"integration_type", "outcome", "group", "topic", "partition", "job", "le"})
PROMQL_FUNCTIONS = frozenset({"sum", "rate", "histogram_quantile", "by"})
IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
PANELS: list[dict[str, Any]] = DASHBOARD["panels"]


def _exprs() -> list[str]:
    return [target["expr"] for panel in PANELS for target in panel["targets"]]


def _split(expr: str) -> tuple[set[str], set[str]]:
    """(metric and function names, label names) of one query."""
    labels: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels |= {name.strip() for name in grouping.split(",") if name.strip()}
    bare = re.sub(r"\{[^}]*\}|\[[^]]*\]|\b(?:by|without)\s*\([^)]*\)", " ", expr)
    return set(IDENTIFIER.findall(bare)), labels


def test_the_dashboard_is_a_current_grafana_dashboard() -> None:
    assert DASHBOARD["schemaVersion"] >= 39
    assert DASHBOARD["uid"] == "recipe-relay"
    ids = [panel["id"] for panel in PANELS]
    assert len(ids) == len(set(ids))
    for panel in PANELS:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])


@pytest.mark.parametrize("expr", _exprs())
def test_every_query_names_only_exported_metrics_and_labels(expr: str) -> None:
    names, labels = _split(expr)
    assert names - PROMQL_FUNCTIONS <= METRICS, f"unknown metric in {expr}"
    assert names & METRICS, f"no metric in {expr}"
    assert labels <= LABELS, f"unknown label in {expr}"


def test_the_panels_cover_what_operators_watch() -> None:
    exprs = _exprs()
    used = set().union(*(_split(expr)[0] for expr in exprs))
    assert used >= METRICS, f"no panel for {METRICS - used}"
    joined = "\n".join(exprs)
    assert "sum by (integration_type, outcome) (rate(relay_delivery_attempts_total" in joined
    assert "sum by (group, topic, partition) (relay_consumer_lag)" in joined
    for quantile in ("0.5", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(relay_order_to_delivered_seconds_bucket" in joined
    titles = " ".join(panel["title"].lower() for panel in PANELS)
    for words in ("destination", "failure rate", "retry backlog", "lag", "order to delivered", "http", "unhealthy"):
        assert words in titles


def test_the_split_sees_a_stray_metric() -> None:
    names, labels = _split('sum by (pod) (rate(relay_unknown_total{outcome="failed"}[5m]))')
    assert "relay_unknown_total" in names
    assert labels == {"pod", "outcome"}


def _exported() -> dict[str, frozenset[str]]:
    """Each series name the services' /metrics carry (``relay_platform.metrics``, where every metric is defined),
    with its labels."""
    suffix = {"counter": "_total", "histogram": "_bucket", "gauge": ""}
    found: dict[str, frozenset[str]] = {}
    for metric in vars(relay_metrics).values():
        if isinstance(metric, MetricWrapperBase):
            family = next(iter(metric.describe()))
            found[family.name + suffix[family.type]] = frozenset(metric._labelnames)
    return found


def test_every_metric_the_dashboard_reads_is_one_the_services_export_with_those_labels() -> None:
    exported = _exported()
    assert exported.keys() >= METRICS, f"not exported: {sorted(METRICS - exported.keys())}"
    for expr in _exprs():
        names, labels = _split(expr)
        for name in names & METRICS:
            assert labels - {"job", "le"} <= exported[name], f"{expr}: {name} has labels {sorted(exported[name])}"
