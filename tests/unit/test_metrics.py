"""Metrics: the Prometheus text format, and what finished call records count. No network."""

from __future__ import annotations

from typing import Any

import pytest
from drive import drive, make_ctx, one_flow

from controller.adapters.metrics import LoopLag, Metrics, failovers_of
from controller.adapters.prometheus import Metric, Registry, escape_label
from controller.core import engine
from controller.core.model import CallContext, RingGroup, UserFacts


def record_of(ctx: CallContext, result: str) -> dict[str, Any]:
    """What Controller.call_ended hands its observers."""
    return {"call_id": ctx.call_id, "did": ctx.did, "result": result, "path": ctx.path,
            "trace": [{"at": t.at, "kind": t.kind, **t.data} for t in ctx.trace]}


def run_dept_call(*, ring: list[Any], facts: dict[str, UserFacts] | None = None,
                  users: dict[str, Any] | None = None,
                  tests: frozenset[str] = frozenset()) -> CallContext:
    fs = one_flow({"d": {"type": "department", "department": "team", "fallback": "failover"}})
    if users:
        fs = fs.model_validate({**fs.model_dump(mode="json"), "users": users})
    ctx = make_ctx(fs)
    ctx.failover_tests = tests
    drive(engine.run_call(ctx), ring=ring, facts=facts)
    return ctx


# ---------------------------------------------------------------------------- text format


def test_given_labels_with_quotes_and_newlines_then_escaped() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    r = Registry()
    c = r.counter("x_total", "Help with\nnewline.", ("who",))
    c.inc(who='say "hi"')
    c.inc(2, who="b")
    assert r.render() == (
        "# HELP callctl_x_total Help with\\nnewline.\n"
        "# TYPE callctl_x_total counter\n"
        'callctl_x_total{who="b"} 2\n'
        'callctl_x_total{who="say \\"hi\\""} 1\n')


def test_given_gauge_function_and_fraction_then_rendered_as_float() -> None:
    r = Registry()
    g = r.gauge("lag_seconds", "Lag.")
    g.func = lambda: 0.0125
    assert r.render().splitlines()[-1] == "callctl_lag_seconds 0.0125"


def test_given_counter_when_decreased_or_wrong_labels_then_refused() -> None:
    c = Metric("c_total", "c", "counter", ("a",))
    with pytest.raises(ValueError):
        c.inc(-1, a="x")
    with pytest.raises(ValueError):
        c.inc(b="x")
    with pytest.raises(ValueError):
        c.set(3, a="x")
    with pytest.raises(ValueError):
        Registry().gauge("g", "g").inc(1, x=1)  # no such label


def test_every_family_has_help_and_type_lines() -> None:
    text = Metrics().render()
    for name in ("calls_total", "ring_attempts_total", "failovers_total", "live_calls",
                 "ari_reconnects_total", "ari_app_replaced_total",
                 "media_events_lost_total", "event_loop_lag_seconds",
                 "webhook_deliveries_total", "redis_writeback_pending",
                 "redis_writeback_dropped_total"):
        assert f"# TYPE callctl_{name} " in text
        assert f"# HELP callctl_{name} " in text


# ---------------------------------------------------------------------------- call records


def test_given_nobody_answers_then_legs_and_line_failover_no_answer_counted() -> None:
    ctx = run_dept_call(ring=[{"u1": "timeout"}, {"u2": 17}])
    m = Metrics()
    m.observe(record_of(ctx, "voicemail"))
    assert m.calls.get(outcome="voicemail") == 1
    assert m.ring_attempts.get(outcome="no_answer", role="primary") == 1
    assert m.ring_attempts.get(outcome="busy", role="primary") == 1
    assert failovers_of(record_of(ctx, "voicemail")["trace"]) == [("line", "no_answer")]
    assert 'callctl_failovers_total{target="line",reason="no_answer"} 1' in m.render()


def test_given_all_members_opted_out_then_failover_reason_nobody_available() -> None:
    ctx = run_dept_call(ring=[], facts={"u1": UserFacts(receive_calls=False),
                                        "u2": UserFacts(receive_calls=False)})
    rec = record_of(ctx, "voicemail")
    assert not [t for t in rec["trace"] if t["kind"] == "leg"]
    assert failovers_of(rec["trace"]) == [("line", "nobody_available")]


def test_given_failover_test_on_line_then_reason_test_counted_once() -> None:
    ctx = run_dept_call(ring=[], tests=frozenset({"+15550100"}))
    assert failovers_of(record_of(ctx, "voicemail")["trace"]) == [("line", "test")]


def test_given_busy_primary_then_alternate_counted_with_primary_outcome() -> None:
    users = {"u1": {"endpoint": "agent1", "alternate": "+15550100004"},
             "u2": {"endpoint": "agent2"}}
    ctx = run_dept_call(ring=[{"u1": (17, "answer")}], users=users)
    rec = record_of(ctx, "completed")
    legs = [(t["role"], t["outcome"]) for t in rec["trace"] if t["kind"] == "leg"]
    assert legs == [("primary", "busy"), ("alternate", "answered")]
    assert failovers_of(rec["trace"]) == [("alternate", "busy")]
    m = Metrics()
    m.observe(rec)
    assert m.ring_attempts.get(outcome="answered", role="alternate") == 1
    assert m.failovers.get(target="alternate", reason="busy") == 1
    assert m.failovers.get(target="line", reason="no_answer") == 0


def test_given_answer_then_no_failover() -> None:
    def first_answers(rg: RingGroup) -> dict[str, Any]:
        return {rg.targets[0].user or "failover": "answer"}

    ctx = run_dept_call(ring=[first_answers])
    assert failovers_of(record_of(ctx, "completed")["trace"]) == []


def test_given_odd_record_then_observe_does_not_raise() -> None:
    m = Metrics()
    m.observe({"result": None})
    m.observe({"result": "no_flow", "trace": [{"kind": "leg"}]})
    assert m.calls.get(outcome="unknown") == 1 and m.calls.get(outcome="no_flow") == 1
    assert m.ring_attempts.get(outcome="unknown", role="primary") == 1


# ---------------------------------------------------------------------------- loop lag


def test_loop_lag_keeps_last_and_window_max() -> None:
    lag = LoopLag(window=60)
    lag.record(0.2)
    lag.record(-0.001)  # clock jitter never reports a negative lag
    assert lag.last == 0.0 and lag.max() == 0.2
    lag.samples[0] = (lag.samples[0][0] - 120, 0.2)  # that sample is now 2 minutes old
    assert lag.max() == 0.0


async def test_loop_lag_measures_a_blocked_loop() -> None:
    import asyncio
    import time

    lag = LoopLag(interval=0.01)
    lag.start()
    await asyncio.sleep(0.03)
    time.sleep(0.15)  # noqa: ASYNC251 - block the loop on purpose
    await asyncio.sleep(0.05)
    await lag.stop()
    assert lag.max() >= 0.1


# ---------------------------------------------------------------------------- histograms, labels


def test_histogram_renders_cumulative_buckets_sum_and_count() -> None:
    r = Registry()
    h = r.histogram("wait_seconds", "Wait.", (1.0, 5.0), ("flow",))
    for v in (0.5, 1.0, 3.0, 7.0):
        h.observe(v, flow="main")
    h.observe(-1.0, flow="main")  # a clock step backwards: not counted
    assert r.render() == (
        "# HELP callctl_wait_seconds Wait.\n"
        "# TYPE callctl_wait_seconds histogram\n"
        'callctl_wait_seconds_bucket{flow="main",le="1"} 2\n'
        'callctl_wait_seconds_bucket{flow="main",le="5"} 3\n'
        'callctl_wait_seconds_bucket{flow="main",le="+Inf"} 4\n'
        'callctl_wait_seconds_sum{flow="main"} 11.5\n'
        'callctl_wait_seconds_count{flow="main"} 4\n')
    assert h.count(flow="main") == 4
    assert r.names() == {"callctl_wait_seconds_bucket", "callctl_wait_seconds_sum",
                         "callctl_wait_seconds_count"}


def test_label_values_are_bounded_to_published_ids_and_a_series_cap() -> None:
    from controller.adapters.metrics import MAX_IDS, BoundedIds

    ids = BoundedIds(cap=3)
    ids.add(["sales", "support"])
    ids.add(["a", "b", "c"])  # only one more fits
    assert ids("sales") == "sales" and ids("a") == "a" and ids("b") == "other"
    assert ids(None) == "none" and ids("") == "none" and ids("x\"}evil") == "other"
    assert MAX_IDS >= 10
    m = Metric("c_total", "c", "counter", ("flow",), max_series=2)
    for f in ("a", "b", "c", "d"):
        m.inc(flow=f)
    assert dict(m.values) == {("a",): 1, ("b",): 1, ("other",): 2}
    h = Registry().histogram("h_seconds", "h", (1.0,), ("flow",))
    h.max_series = 1
    h.observe(0.5, flow="a")
    h.observe(0.5, flow="b")
    assert set(h.series) == {("a",), ("other",)}


T = 1_700_000_000.0
TRACE: list[dict[str, Any]] = [
    {"at": T, "kind": "flow", "flow": "main"},
    {"at": T, "kind": "node", "id": "menu", "type": "menu"},
    {"at": T + 4, "kind": "node", "id": "sales", "type": "department"},
    {"at": T + 4, "kind": "department", "node": "sales", "department": "sales"},
    {"at": T + 4.2, "kind": "ring", "users": ["u1", "u2"], "timeout": 10, "wave": 0},
    {"at": T + 9, "kind": "answer", "user": "u2", "address": "agent2", "role": "primary"},
    {"at": T + 9, "kind": "leg", "user": "u1", "outcome": "cancelled", "role": "primary",
     "started": T + 4.3, "ended": T + 9},
    {"at": T + 9, "kind": "leg", "user": "u2", "outcome": "answered", "role": "primary",
     "started": T + 4.25, "ended": T + 9},
]


def test_call_times_from_a_record_and_its_trace() -> None:
    from controller.adapters.metrics import call_times
    from controller.core.calllog import summarise

    rec = {"started": T, "ended": T + 69, "result": "completed"}
    rec.update(summarise(rec, TRACE))
    t = call_times(rec, TRACE)
    assert (t.flow, t.department) == ("main", "sales")
    assert t.setup == pytest.approx(4.25) and t.wait == 9 and t.talk == 60
    # answered by an extension node (no department), nothing rang: no setup, no department
    direct = [TRACE[0], {"at": T, "kind": "node", "id": "x", "type": "extension"},
              {"at": T + 2, "kind": "answer", "user": "u1"}]
    t = call_times({"started": T, "wait": 2.0, "talk": 5.0}, direct)
    assert (t.flow, t.department, t.setup, t.wait) == ("main", None, None, 2.0)


def test_observe_fills_the_time_histograms_with_bounded_labels() -> None:
    from controller.core.calllog import summarise

    m = Metrics()
    m.known(["main"], ["sales"])
    rec: dict[str, Any] = {"started": T, "ended": T + 69, "result": "completed",
                           "trace": TRACE}
    rec.update(summarise(rec, TRACE))
    m.observe(rec)
    assert m.setup.count(flow="main") == 1
    assert m.wait.count(flow="main", department="sales") == 1
    assert m.talk.count(flow="main", department="sales") == 1
    assert m.flow_calls.get(flow="main", outcome="completed") == 1
    assert m.department_calls.get(department="sales", outcome="answered") == 1
    # a flow this process never saw published (or a forged id): "other"
    odd = [{**TRACE[0], "flow": "not-published"}, *TRACE[1:]]
    m.observe({**rec, "trace": odd})
    assert m.setup.count(flow="other") == 1
    # a call that reached no flow (blocked, no_flow): counted under "none", no times
    m.observe({"result": "no_flow", "started": T, "ended": T, "trace": []})
    assert m.flow_calls.get(flow="none", outcome="no_flow") == 1
    text = m.render()
    assert 'callctl_call_wait_seconds_bucket{flow="main",department="sales",le="10"} 1' in text


def test_build_info_and_up_gauges() -> None:
    import platform

    from controller import version

    m = Metrics()
    m.set_build_info(asterisk="16.28.0~dfsg-0+deb11u10")
    m.ari_up.collect = lambda: {("node1",): 1.0, ("node2",): 0.0}
    m.redis_up.func = lambda: 1.0
    text = m.render()
    assert (f'callctl_build_info{{version="{version()}",python="{platform.python_version()}",'
            'asterisk="16.28.0~dfsg-0+deb11u10"} 1') in text
    assert 'callctl_ari_up{node="node1"} 1\ncallctl_ari_up{node="node2"} 0\n' in text
    assert "callctl_redis_up 1\n" in text
    m.set_build_info(asterisk="22.10.1")  # one sample: the version that answers now
    assert m.render().count("callctl_build_info{") == 1
