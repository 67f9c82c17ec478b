"""The Grafana dashboard and Prometheus alert rules in deploy/ (issue 14 item 9): they parse,
promtool accepts them (when installed: scripts/install.sh with CALLCTL_TEST_DEPS=1 puts it in
the venv), and every metric they use is one the controller exports (the metrics module here;
tests/integration/test_metrics_scrape.py checks a real /metrics scrape too)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from deploymon import (
    ALERTS,
    DASHBOARD,
    PROMETHEUS_OWN,
    alert_rules,
    dashboard_exprs,
    exported,
    metric_names,
    promtool,
)

from controller.adapters.metrics import Metrics
from controller.core.calllog import summarise


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["title"] == "callctl" and doc["uid"] == "callctl"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    graphs = [p for p in doc["panels"] if p["type"] != "row"]
    assert len(graphs) >= 12
    for p in graphs:
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]), p["title"]
    used = set().union(*map(metric_names, dashboard_exprs()))
    for family in ("callctl_call_setup_seconds_bucket", "callctl_call_wait_seconds_bucket",
                   "callctl_call_talk_seconds_sum", "callctl_ari_up", "callctl_redis_up",
                   "callctl_build_info", "callctl_flow_calls_total",
                   "callctl_department_calls_total"):
        assert family in used, family


def test_every_alert_has_a_severity_and_a_summary() -> None:
    rules = alert_rules()
    names = {r["alert"] for r in rules}
    assert {"CallctlControllerDown", "CallctlAriDown", "CallctlRedisDown",
            "CallctlNoCallsAnswered", "CallctlHighEventLoopLag",
            "CallctlWebhookFailures"} <= names
    for r in rules:
        assert r["labels"]["severity"] in ("critical", "warning"), r["alert"]
        assert r["annotations"]["summary"], r["alert"]


def test_every_metric_the_dashboard_and_alerts_use_is_exported() -> None:
    have = exported() | PROMETHEUS_OWN
    for expr in [*dashboard_exprs(), *(r["expr"] for r in alert_rules())]:
        used = metric_names(expr)
        assert used, f"no metric in {expr!r}"
        assert used <= have, f"{sorted(used - have)} not exported (in {expr!r})"


@pytest.mark.skipif(promtool() is None, reason="promtool not installed "
                    "(CALLCTL_TEST_DEPS=1 bash scripts/install.sh extracts it into .venv)")
def test_promtool_accepts_the_alert_rules() -> None:
    res = subprocess.run([str(promtool()), "check", "rules", str(ALERTS)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in res.stdout


@pytest.mark.skipif(promtool() is None, reason="promtool not installed")
def test_promtool_accepts_the_exposition() -> None:
    m = Metrics()
    m.known(["main"], ["sales"])
    trace = [{"at": 10.0, "kind": "flow", "flow": "main"},
             {"at": 10.0, "kind": "department", "department": "sales"},
             {"at": 12.0, "kind": "answer", "user": "u1"},
             {"at": 12.0, "kind": "leg", "user": "u1", "outcome": "answered",
              "role": "primary", "started": 10.5, "ended": 12.0}]
    rec: dict[str, Any] = {"started": 10.0, "ended": 40.0, "result": "completed",
                           "trace": trace}
    rec.update(summarise(rec, trace))
    m.observe(rec)
    res = subprocess.run([str(promtool()), "check", "metrics"], input=m.render(),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
