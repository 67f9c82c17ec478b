"""Webhooks: signature, retry policy and backoff, the bounded queue. No network: a scripted
transport stands in for HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.metrics import Metrics
from controller.adapters.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookConfig,
    Webhooks,
    WebhookSecretError,
    should_retry,
    sign,
    verify,
)
from controller.config import ConfigError, Settings, StartupError, load_settings
from controller.core.backoff import ExponentialBackoff
from controller.shell.services import Services
from controller.urls import parse_urls, safe_url

SECRET = "s3cret"


class Script:
    """A transport answering statuses from a list (the last one repeats); records requests."""

    def __init__(self, *statuses: int | Exception, delay: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[str, bytes, dict[str, str], float]] = []
        self.times: list[float] = []
        self.delay = delay

    async def __call__(self, url: str, body: bytes, headers: dict[str, str],
                       timeout: float) -> int:
        self.requests.append((url, body, headers, timeout))
        self.times.append(time.monotonic())
        if self.delay:
            await asyncio.sleep(self.delay)
        st = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if isinstance(st, Exception):
            raise st
        return st


def hooks(transport: Script, **kw: Any) -> Webhooks:
    cfg = WebhookConfig(after_call=kw.pop("after_call", ("http://hooks.test/after?token=x",)),
                        in_call=kw.pop("in_call", ("http://hooks.test/in",)),
                        secret=SECRET, **kw)
    return Webhooks(cfg, Metrics(), transport=transport,
                    backoff=ExponentialBackoff(0.02, 0.2, jitter=False))


async def settle(w: Webhooks, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not w.idle():
        assert time.monotonic() < deadline, "webhooks did not settle"
        await asyncio.sleep(0.005)


# ---------------------------------------------------------------------------- signature


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    want = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, "1700000000", body) == "sha256=" + want


def test_verify_accepts_good_and_rejects_tampered_wrong_secret_and_old() -> None:
    body = b'{"event":"call.ended"}'
    now = 1_700_000_000
    headers = {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: sign(SECRET, str(now), body)}
    assert verify(SECRET, headers, body, now=now + 10)
    assert not verify(SECRET, headers, body + b" ", now=now)
    assert not verify("other", headers, body, now=now)
    assert not verify(SECRET, headers, body, now=now + 301)  # a replay, 5 minutes later
    assert not verify(SECRET, {TIMESTAMP_HEADER: "x", SIGNATURE_HEADER: "y"}, body)
    assert not verify(SECRET, {}, body)


# ---------------------------------------------------------------------------- policy


def test_retry_policy() -> None:
    assert [s for s in (0, 200, 204, 301, 400, 401, 404, 408, 410, 425, 429, 500, 503)
            if should_retry(s)] == [0, 408, 425, 429, 500, 503]


def test_urls_parsed_checked_and_logged_without_query_or_credentials() -> None:
    assert parse_urls("http://a/x, https://b:8443/y?t=1\nhttp://c") == (
        "http://a/x", "https://b:8443/y?t=1", "http://c")
    with pytest.raises(ValueError):
        parse_urls("ftp://a/x")
    assert safe_url("https://user:pw@b:8443/y?token=secret") == "https://b:8443/y"


def test_settings_from_env_name_the_bad_variable() -> None:
    s = load_settings({"CALLCTL_WEBHOOK_AFTER_CALL_URLS": "http://a/x",
                       "CALLCTL_WEBHOOK_SECRET": "k", "CALLCTL_WEBHOOK_RETRIES": "2"})
    assert s.webhook_after_call == ("http://a/x",) and s.webhook_secret == "k"
    assert s.webhook_retries == 2 and s.webhook_in_call == ()
    for env, name in (({"CALLCTL_WEBHOOK_IN_CALL_URLS": "gopher://x"}, "IN_CALL_URLS"),
                      ({"CALLCTL_WEBHOOK_TIMEOUT": "0"}, "TIMEOUT"),
                      ({"CALLCTL_WEBHOOK_RETRIES": "many"}, "RETRIES"),
                      ({"CALLCTL_ADMIN": "maybe"}, "CALLCTL_ADMIN"),
                      ({"CALLCTL_ADMIN_PORT": "99999"}, "CALLCTL_ADMIN_PORT")):
        with pytest.raises(ConfigError, match=name):
            load_settings(env)


def test_enabled_webhooks_need_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        Webhooks(WebhookConfig(after_call=("http://a/",)))
    Webhooks(WebhookConfig())  # none configured: no secret needed


@pytest.mark.parametrize("secret", ["", " ", "\t\n"])
def test_an_empty_secret_is_refused_by_verify_sign_and_the_sender(secret: str) -> None:
    """Issue 13 item 17: verify("") accepted a request signed with the empty key."""
    body = b'{"event":"call.ended"}'
    now = 1_700_000_000
    forged = {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: "sha256=" + hmac.new(
        secret.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()}
    with pytest.raises(WebhookSecretError, match="secret is empty"):
        verify(secret, forged, body, now=now)
    with pytest.raises(WebhookSecretError):
        sign(secret, str(now), body)
    with pytest.raises(WebhookSecretError, match="CALLCTL_WEBHOOK_SECRET"):
        Webhooks(WebhookConfig(in_call=("http://a/",), secret=secret))


def test_a_blank_secret_with_webhooks_configured_is_a_startup_error(tmp_path: Path) -> None:
    settings = Settings(run_dir=tmp_path, webhook_after_call=("http://a/",),
                        webhook_secret="  ")
    ctl = types.SimpleNamespace(settings=settings, calls={}, observers=[], live_observers=[],
                                flows=types.SimpleNamespace(on_change=[]))
    with pytest.raises(StartupError, match="webhooks are configured but the webhook secret "
                       "is empty"):
        Services(ctl)  # type: ignore[arg-type]
    # none set at all: generated into the run directory's secrets.env, as the other secrets
    gen = Services(types.SimpleNamespace(  # type: ignore[arg-type]
        settings=Settings(run_dir=tmp_path, webhook_after_call=("http://a/",)), calls={},
        observers=[], live_observers=[], flows=types.SimpleNamespace(on_change=[])))
    assert len(gen.webhooks.config.secret) >= 32
    assert f"WEBHOOK_SECRET={gen.webhooks.config.secret}" in (
        tmp_path / "secrets.env").read_text()


def test_callctl_run_says_so_in_one_line_and_exits_3(tmp_path: Path) -> None:
    env = {**os.environ, "CALLCTL_RUN_DIR": str(tmp_path),
           "CALLCTL_WEBHOOK_AFTER_CALL_URLS": "http://127.0.0.1:9/hook",
           "CALLCTL_WEBHOOK_SECRET": "   "}
    res = subprocess.run([sys.executable, "-m", "controller", "run"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 3, res.stderr
    lines = res.stderr.strip().splitlines()  # not a terminal: the JSON log stream
    assert len(lines) == 1, lines
    line = json.loads(lines[0])
    assert line["level"] == "critical" and line["msg"] == (
        "webhooks are configured but the webhook secret is empty: set "
        "CALLCTL_WEBHOOK_SECRET (or WEBHOOK_SECRET in the run directory's secrets.env)")


# ---------------------------------------------------------------------------- delivery


async def test_after_call_record_posted_once_signed_with_headers() -> None:
    t = Script(200)
    w = hooks(t)
    w.start()
    w.on_call_ended({"call_id": "c1", "result": "completed", "trace": [{"kind": "node"}]})
    await settle(w)
    await w.stop()
    assert len(t.requests) == 1
    url, body, headers, _ = t.requests[0]
    assert url == "http://hooks.test/after?token=x"
    doc = json.loads(body)
    assert doc["event"] == "call.ended" and doc["call"]["call_id"] == "c1"
    assert doc["delivery"] == headers[DELIVERY_HEADER]
    assert headers["X-Callctl-Event"] == "call.ended"
    assert verify(SECRET, headers, body)
    assert w.metrics.webhooks.get(event="call.ended", result="ok") == 1


async def test_answered_event_goes_to_in_call_urls_only() -> None:
    t = Script(204)
    w = hooks(t, after_call=())
    w.start()
    w.on_call_ended({"call_id": "c1"})  # no after-call URL: nothing
    w.on_answered({"event": "answered", "call_id": "c1", "user": "alice"})
    await settle(w)
    await w.stop()
    assert [json.loads(r[1])["event"] for r in t.requests] == ["call.answered"]
    doc = json.loads(t.requests[0][1])
    assert doc["user"] == "alice" and doc["call_id"] == "c1"


async def test_given_failures_then_retried_with_growing_delays_same_delivery_id() -> None:
    t = Script(0, 503, RuntimeError("boom"), 200)
    w = hooks(t, in_call=())
    w.start()
    w.on_call_ended({"call_id": "c2"})
    await settle(w)
    await w.stop()
    assert len(t.requests) == 4
    assert len({r[2][DELIVERY_HEADER] for r in t.requests}) == 1
    gaps = [b - a for a, b in zip(t.times, t.times[1:], strict=False)]
    # backoff 0.02, 0.04, 0.08 s (no jitter): each gap at least its delay, and growing
    assert gaps[0] >= 0.02 and gaps[1] >= 0.04 and gaps[2] >= 0.08
    assert w.metrics.webhook_attempt_failures.get(event="call.ended") == 3
    assert w.metrics.webhooks.get(event="call.ended", result="ok") == 1
    assert w.metrics.webhooks.get(event="call.ended", result="failed") == 0


async def test_given_dead_endpoint_then_gives_up_after_retries_and_counts_failure() -> None:
    t = Script(500)
    w = hooks(t, in_call=(), retries=2)
    w.start()
    w.on_call_ended({"call_id": "c3"})
    await settle(w)
    await w.stop()
    assert len(t.requests) == 3  # first attempt + 2 retries
    assert w.metrics.webhooks.get(event="call.ended", result="failed") == 1
    assert w.last_error == {"http://hooks.test/after": "HTTP 500"}


async def test_given_client_error_then_not_retried() -> None:
    t = Script(400)
    w = hooks(t, in_call=())
    w.start()
    w.on_call_ended({"call_id": "c4"})
    await settle(w)
    await w.stop()
    assert len(t.requests) == 1
    assert w.metrics.webhooks.get(event="call.ended", result="failed") == 1


async def test_given_full_queue_then_dropped_counted_and_caller_never_blocks() -> None:
    t = Script(200, delay=0.2)
    w = hooks(t, in_call=(), queue_size=2, workers=1)
    w.start()
    t0 = time.monotonic()
    for i in range(10):
        w.on_call_ended({"call_id": f"c{i}"})  # observers only enqueue
    assert time.monotonic() - t0 < 0.05
    assert w.metrics.webhooks.get(event="call.ended", result="dropped") == 8
    await w.stop(grace=2)
    assert w.metrics.webhooks.get(event="call.ended", result="ok") == 2


async def test_given_retry_pending_when_stopped_then_timer_cancelled() -> None:
    t = Script(503)
    w = Webhooks(WebhookConfig(after_call=("http://h/",), secret=SECRET), Metrics(),
                 transport=t, backoff=ExponentialBackoff(30, 60, jitter=False))
    w.start()
    w.on_call_ended({"call_id": "c5"})
    deadline = time.monotonic() + 2
    while not w._timers:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    await w.stop(grace=0.1)
    assert not w._timers and len(t.requests) == 1
