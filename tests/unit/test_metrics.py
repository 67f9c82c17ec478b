"""Metrics: the Prometheus text format, and what finished call records count. No network."""

from __future__ import annotations

from typing import Any

import pytest
from drive import simulate
from flowdrive import drive, make_ctx, one_flow

from controller import engine
from controller.metrics import LoopLag, Metric, Metrics, Registry, escape_label, failovers_of
from controller.model import CallContext, RingGroup, RingResult, UserFacts


def record_of(ctx: CallContext, result: str) -> dict[str, Any]:
    """What Controller.call_ended hands its observers."""
    return {"call_id": ctx.call_id, "did": ctx.did, "result": result, "path": ctx.path,
            "trace": [{"at": t.at, "kind": t.kind, **t.data} for t in ctx.trace]}


def ringing(script: dict[str, Any]) -> Any:
    return lambda rg: simulate(rg, script)


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
                 "webhook_deliveries_total"):
        assert f"# TYPE callctl_{name} " in text
        assert f"# HELP callctl_{name} " in text


# ---------------------------------------------------------------------------- call records


def test_given_nobody_answers_then_legs_and_line_failover_no_answer_counted() -> None:
    ctx = run_dept_call(ring=[ringing({"u1": "timeout"}), ringing({"u2": 17})])
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
    ctx = run_dept_call(ring=[ringing({"u1": (17, "answer")})], users=users)
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
    def first_answers(rg: RingGroup) -> RingResult:
        return simulate(rg, {rg.targets[0].user or "failover": "answer"})

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
