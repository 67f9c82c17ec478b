"""The Grafana dashboard and Prometheus alert rules in deploy/, read for the tests: their
PromQL expressions and the metric names those select."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from controller.adapters.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "callctl.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_OWN = {"up"}
"""Series Prometheus makes itself (not the controller's)."""


def promtool() -> str | None:
    return shutil.which("promtool") or shutil.which("promtool", path=str(Path(sys.executable)
                                                                        .parent))


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    out = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    out += [v["query"]["query"] for v in doc["templating"]["list"]
            if isinstance(v.get("query"), dict)]
    return out


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects: ``callctl_*`` and Prometheus' own."""
    names = set(re.findall(r"\bcallctl_[a-z0-9_]+\b", expr))
    names |= {n for n in PROMETHEUS_OWN if re.search(rf"(?<![\w]){n}\{{", expr)}
    return names


def exported() -> set[str]:
    return Metrics().registry.names()
