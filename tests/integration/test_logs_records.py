"""Issue 14 item 7: call records and logs of a real ``callctl run`` process.

One ``callctl run`` with ``CALLCTL_LOG_FORMAT=json`` on the slot's stack takes a blocked
call, a call to a DID without a flow and a call that plays a prompt and is answered by an
agent (SIPp phones), with its AMI unreachable and its webhooks failing (warning paths).
Then: every line it wrote on stdout/stderr is a JSON object; every line about a call carries
that call's ``call_id``, and the start, the answer and the end of the answered call are
among them at INFO; the three call log records have the same fields; the answered call's
trace names the prompt file played and ``callctl call ID`` shows it in the timeline.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path
from typing import Any

from controller.config import PROJECT_ROOT

from integration.conftest import TEST_ENV, Harness, PhoneBank, until
from integration.runproc import CALLCTL, RunProcess, clean_env
from integration.test_ops_cli import cli

FLOWS = """
settings: {timezone: UTC}
users:
  alice: {endpoint: agent1}
departments:
  sales: {strategy: serial, members: [alice], ring_time: 10}
flows:
  main:
    dids: ["+15550300"]
    entry: hello
    nodes:
      hello: {type: message, prompt: welcome, next: sales}
      sales: {type: department, department: sales}
"""
ANSWERED_DID, NO_FLOW_DID = "+15550300", "+15550399"
BLOCKED = "+19005551234"
CALL_LINE = re.compile(r"^call (\S+?):")


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def json_lines(text: str, name: str) -> list[dict[str, Any]]:
    """Every line of a process's output, parsed: a line that is not a JSON object fails the
    test, naming it."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError(f"{name}:{n}: not a JSON line: {line!r}") from None
        assert isinstance(obj, dict), f"{name}:{n}: {line!r}"
        out.append(obj)
    return out


async def records(h: Harness) -> dict[str, dict[str, Any]]:
    rows = await h.redis.xrange(f"{h.prefix}calllog")
    recs = [json.loads(f["record"]) for _, f in rows]
    return {r["result"]: r for r in recs}


async def test_json_log_stream_and_call_records_of_a_real_process(
        harness: Harness, phones: PhoneBank, tmp_path: Path) -> None:
    await phones.start("agent1", "answer", ring_ms=300)
    await harness.publish(FLOWS, tmp_path)
    rc, _, err = await cli(harness, "block", "+1900*", "--reason", "test")
    assert rc == 0, err
    dead_hook = f"http://127.0.0.1:{free_tcp_port()}/hook"  # nothing listens: webhooks fail
    env = clean_env(**{**TEST_ENV, "CALLCTL_AMI_PORT": str(free_tcp_port())},  # AMI away
                    CALLCTL_REDIS_PREFIX=harness.prefix,
                    CALLCTL_CONTROLLER_ID="logs-records", CALLCTL_LOG_FORMAT="json",
                    CALLCTL_ADMIN="on", CALLCTL_ADMIN_PORT=str(free_tcp_port()),
                    CALLCTL_WEBHOOK_AFTER_CALL_URLS=dead_hook,
                    CALLCTL_WEBHOOK_IN_CALL_URLS=dead_hook, CALLCTL_WEBHOOK_RETRIES="0",
                    CALLCTL_WEBHOOK_TIMEOUT="1")
    ctl = RunProcess(env, tmp_path / "controller.log")
    try:
        ctl.start()
        await until(lambda: ctl.said("ARI events: connected"), 30, "controller connected")
        blocked = await harness.call(ANSWERED_DID, caller="00" + BLOCKED[1:], hold_ms=500)
        no_flow = await harness.call(NO_FLOW_DID, hold_ms=500)
        answered = await harness.call(ANSWERED_DID, hold_ms=5000)  # prompt 2.6 s, ring
        assert (blocked.final_status(), no_flow.final_status()) == (403, 404)
        assert answered.final_status() == 200, answered.trace[-1500:]

        async def three_logged() -> bool:
            return set(await records(harness)) >= {"blocked", "no_flow", "completed"}

        await until(three_logged, 20, "the three calls in the call log")
        await until(lambda: ctl.said("failed after 1 attempt(s)"), 20, "a webhook failure")
        await until(lambda: ctl.said("outage failover targets not written"), 20,
                    "the AMI warning")
    finally:
        ctl.stop()

    recs = await records(harness)
    ids = {result: recs[result]["call_id"] for result in ("blocked", "no_flow", "completed")}
    # -- one record shape for every call
    keys = {result: sorted(recs[result]) for result in ids}
    assert keys["blocked"] == keys["no_flow"] == keys["completed"], keys
    for result in ("blocked", "no_flow"):
        r = recs[result]
        assert (r["rang"], r["path"], r["answered_at"], r["wait"], r["talk"]) == \
            ([], [], None, None, None), r
        assert r["flow_version"] == recs["completed"]["flow_version"] == 1, r
        assert r["duration"] >= 0 and r["node"] == recs["completed"]["node"], r
    assert recs["blocked"]["blocked_by"] == "+1900*" and recs["no_flow"]["blocked_by"] is None

    # -- nothing but JSON lines; every call line carries its call_id
    lines = json_lines(ctl.log.read_text(errors="replace"), "stdout+stderr")
    for ln in lines:
        m = CALL_LINE.match(str(ln.get("msg")))
        if m:
            assert ln.get("call_id") == m.group(1), ln
    by_call: dict[str, list[dict[str, Any]]] = {}
    for ln in lines:
        if ln.get("call_id"):
            by_call.setdefault(ln["call_id"], []).append(ln)
    msgs = {result: [f"{ln['level']} {ln['msg']}" for ln in by_call.get(cid, [])]
            for result, cid in ids.items()}
    assert any("blocked by +1900*" in m for m in msgs["blocked"]), msgs["blocked"]
    assert any(f"no published flow for DID {NO_FLOW_DID}" in m for m in msgs["no_flow"]), \
        msgs["no_flow"]
    done = msgs["completed"]
    for what in ("info call {id}: started", "info call {id}: answered by alice",
                 "info call {id}: ended completed"):
        text = what.format(id=ids["completed"])
        assert any(m.startswith(text) for m in done), (text, done)
    # the webhook failures of each call (a background job, another task) carry its id too
    for result in ("blocked", "no_flow", "completed"):
        assert any("webhook call.ended" in m and "failed" in m for m in msgs[result]), \
            (result, msgs[result])
    assert any("webhook call.answered" in m for m in done), done

    # -- the trace names the prompt file played; `callctl call` shows it
    trace = json.loads(await harness.redis.get(f"{harness.prefix}trace:{ids['completed']}"))
    played = [t for t in trace if t["kind"] == "prompt"]
    welcome = str(PROJECT_ROOT / "prompts" / "en" / "welcome")
    assert played and played[0]["media"] == [f"sound:{welcome}"], trace
    assert played[0]["files"] == [f"{welcome}.wav"] and played[0]["node"] == "hello", played
    rc, detail, err = await cli(harness, "call", ids["completed"], "--json")
    assert rc == 0, err
    assert f"play at hello: {welcome}.wav" in [e["text"] for e in detail["events"]], detail


async def test_a_startup_failure_is_one_json_line() -> None:
    env = clean_env(**{**TEST_ENV, "REDIS_URL": f"redis://127.0.0.1:{free_tcp_port()}/0"},
                    CALLCTL_LOG_FORMAT="json", CALLCTL_ADMIN="off")
    proc = await asyncio.create_subprocess_exec(
        CALLCTL, "run", env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 3
    assert json_lines(out.decode(), "stdout") == []
    lines = json_lines(err.decode(), "stderr")
    assert any(ln["level"] == "critical" and "does not answer" in ln["msg"] for ln in lines), \
        lines
