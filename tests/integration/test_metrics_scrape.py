"""Issue 14 item 9 against the real stack: after a real call (SIPp caller, a department whose
second agent answers), the controller's /metrics has the setup/wait/talk histograms labelled
with the published flow and department, callctl_build_info with the Asterisk that answers
ARI, callctl_ari_up and callctl_redis_up; and every metric the Grafana dashboard and the
alert rules use is in that scrape."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from deploymon import PROMETHEUS_OWN, alert_rules, dashboard_exprs, metric_names

from controller.adapters.ari.client import AriClient

from integration.conftest import Harness, PhoneBank, until
from integration.test_admin_api import DID, Api, metric, start_api


@pytest.fixture
async def apis() -> AsyncIterator[list[Api]]:
    made: list[Api] = []
    yield made
    for a in made:
        await a.close()


def scraped_names(text: str) -> set[str]:
    """Series names a scrape can hold, from its ``# TYPE`` lines (histograms: their
    ``_bucket``, ``_sum`` and ``_count``)."""
    out: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        out |= ({f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram"
                else {name})
    return out


async def test_a_real_call_fills_the_histograms_and_the_dashboard_metrics_exist(
        harness: Harness, phones: PhoneBank, apis: list[Api], ari: AriClient,
        tmp_path: Path) -> None:
    await phones.start("agent1", "busy")
    await phones.start("agent2", "answer", ring_ms=300)
    ctl, api = await start_api(harness, tmp_path)
    apis.append(api)

    async def redis_up() -> bool:
        _, text = await api.get("/metrics")
        return metric(text, "callctl_redis_up") == 1

    await until(redis_up, 15, "callctl_redis_up 1")
    result = await harness.call(DID, hold_ms=2000)
    rec = await harness.record()
    assert result.final_status() == 200 and rec["answered_by"] == "bob", rec

    status, text = await api.get("/metrics")
    assert status == 200
    # histograms: the flow and department ids are the published ones
    setup = metric(text, 'callctl_call_setup_seconds_count{flow="main"}')
    assert setup == 1, text
    total = metric(text, 'callctl_call_setup_seconds_sum{flow="main"}')
    assert total is not None and 0 < total < rec["wait"]  # the first leg rang before answer
    assert metric(text, 'callctl_call_wait_seconds_count{flow="main",department="sales"}') == 1
    assert metric(text, 'callctl_call_talk_seconds_count{flow="main",department="sales"}') == 1
    wait_sum = metric(text, 'callctl_call_wait_seconds_sum{flow="main",department="sales"}')
    assert wait_sum == rec["wait"]
    assert metric(text, 'callctl_flow_calls_total{flow="main",outcome="completed"}') == 1
    assert metric(text, 'callctl_department_calls_total{department="sales",'
                        'outcome="answered"}') == 1
    # build info and health gauges
    info = re.search(r'^callctl_build_info\{version="([^"]+)",python="([^"]+)",'
                     r'asterisk="([^"]*)"\} 1$', text, re.M)
    assert info is not None, text
    assert re.match(r"(16|22)\.", info.group(3)), info.group(0)
    assert metric(text, f'callctl_ari_up{{node="{ctl.settings.node_name}"}}') == 1
    assert metric(text, "callctl_redis_up") == 1

    have = scraped_names(text) | PROMETHEUS_OWN
    for expr in [*dashboard_exprs(), *(r["expr"] for r in alert_rules())]:
        assert metric_names(expr) <= have, f"{sorted(metric_names(expr) - have)} in {expr!r}"
