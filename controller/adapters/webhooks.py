"""Webhooks: POST JSON about calls to your endpoints, signed, retried, never in a call's way.

Two events:

* ``call.answered`` (in-call): someone answered; sent when the caller is bridged to them.
  Body: ``{"event", "delivery", "sent_at", "call_id", "did", "caller", "flow_version",
  "user", "address", "role", "answered_at"}`` (``user`` is null for a line's failover number).
* ``call.ended`` (after-call): the finished call's record. Body: ``{"event", "delivery",
  "sent_at", "call": {call_id, did, caller, flow_version, started, ended, answered_at,
  result, answered_by, path, trace, ...}}``.

Each request carries ``Content-Type: application/json`` and:

* ``X-Callctl-Event``: the event name; ``X-Callctl-Delivery``: a unique id per delivery
  (the same across its retries: deduplicate on it);
* ``X-Callctl-Timestamp``: Unix seconds when the request was signed;
* ``X-Callctl-Signature: sha256=<hex>``: HMAC-SHA256 with the webhook secret over
  ``<timestamp>.<raw body>``. Verify it with a constant-time compare and reject old timestamps
  (replays). :func:`verify` is a reference implementation; it refuses (raises) an empty
  secret, which would make any signature "valid" for whoever knows the algorithm.

Delivery: a 2xx answer is success. Network errors, timeouts, 408, 425, 429 and 5xx are retried
with exponential backoff (jittered, capped); other answers are final failures. Requests wait in
a bounded queue served by a few worker tasks; a retry is re-queued after its delay, so a dead
endpoint never holds a worker. When the queue is full the new delivery is dropped. Failures and
drops are logged (the URL without its query string) and counted in ``/metrics``
(``callctl_webhook_deliveries_total``); none of this ever blocks or fails a call.

Settings (env): ``CALLCTL_WEBHOOK_AFTER_CALL_URLS`` and ``CALLCTL_WEBHOOK_IN_CALL_URLS``
(whitespace- or comma-separated http(s) URLs), ``CALLCTL_WEBHOOK_SECRET`` (default: generated
into ``<run dir>/secrets.env``), ``CALLCTL_WEBHOOK_TIMEOUT`` (s, default 5),
``CALLCTL_WEBHOOK_RETRIES`` (retries after the first attempt, default 5). With URLs configured
and a blank secret, the sender refuses to start (:class:`WebhookSecretError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from controller.adapters.metrics import Metrics
from controller.core.backoff import Backoff, ExponentialBackoff
from controller.urls import safe_url

log = logging.getLogger("callctl.webhooks")

SIGNATURE_HEADER = "X-Callctl-Signature"
TIMESTAMP_HEADER = "X-Callctl-Timestamp"
EVENT_HEADER = "X-Callctl-Event"
DELIVERY_HEADER = "X-Callctl-Delivery"
ANSWERED = "call.answered"
ENDED = "call.ended"
RETRY_STATUSES = frozenset({408, 425, 429})

Transport = Callable[[str, bytes, dict[str, str], float], Awaitable[int]]
"""``(url, body, headers, timeout) -> HTTP status`` (raises on network errors)."""


class WebhookSecretError(ValueError):
    """An empty (or blank) webhook secret: nothing signed with it proves anything."""


def _check_secret(secret: str) -> None:
    if not isinstance(secret, str) or not secret.strip():
        raise WebhookSecretError("the webhook secret is empty: set CALLCTL_WEBHOOK_SECRET "
                                 "(or WEBHOOK_SECRET in the run directory's secrets.env)")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: ``sha256=<hex HMAC-SHA256(secret, ts + "." + body)>``.
    Raises WebhookSecretError for an empty secret."""
    _check_secret(secret)
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, max_age: float = 300.0,
           now: float | None = None) -> bool:
    """Receiver side: is this request signed with ``secret`` and recent? Constant-time.
    Raises WebhookSecretError for an empty secret (a receiver without its secret set)."""
    _check_secret(secret)
    ts = headers.get(TIMESTAMP_HEADER, "")
    got = headers.get(SIGNATURE_HEADER, "")
    if not ts.isdigit() or not got:
        return False
    if abs((time.time() if now is None else now) - int(ts)) > max_age:
        return False
    return hmac.compare_digest(sign(secret, ts, body), got)


def should_retry(status: int) -> bool:
    """0 = the request failed (network error, timeout)."""
    return status == 0 or status >= 500 or status in RETRY_STATUSES




@dataclass(frozen=True)
class WebhookConfig:
    after_call: tuple[str, ...] = ()
    in_call: tuple[str, ...] = ()
    secret: str = field(default="", repr=False)
    timeout: float = 5.0
    retries: int = 5
    queue_size: int = 1000
    workers: int = 4

    @property
    def enabled(self) -> bool:
        return bool(self.after_call or self.in_call)


@dataclass
class Delivery:
    event: str
    url: str
    body: bytes
    id: str
    attempt: int = 0  # failed attempts so far
    call_id: str | None = None  # the call it is about: its log lines carry it


async def aiohttp_transport(session: aiohttp.ClientSession, url: str, body: bytes,
                            headers: dict[str, str], timeout: float) -> int:
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            await resp.read()
            return resp.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return 0


class Webhooks:
    """The delivery machinery. ``on_call_ended`` and ``on_answered`` are Controller observers:
    they only serialise and enqueue (never await, never raise)."""

    def __init__(self, config: WebhookConfig, metrics: Metrics | None = None, *,
                 transport: Transport | None = None, backoff: Backoff | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if config.enabled:
            _check_secret(config.secret)
        self.config = config
        self.metrics = metrics or Metrics()
        self.backoff: Backoff = backoff or ExponentialBackoff(1.0, 60.0, mode="equal")
        self.clock = clock
        self._transport = transport
        self._session: aiohttp.ClientSession | None = None
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue(config.queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._inflight = 0
        self.delivered: list[tuple[str, str, int]] = []  # (delivery id, url, status), bounded
        self.last_error: dict[str, str] = {}  # safe url -> last failure

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._workers or not self.config.enabled:
            return
        self._workers = [asyncio.create_task(self._worker())
                         for _ in range(max(1, self.config.workers))]

    async def stop(self, grace: float = 2.0) -> None:
        """Give queued deliveries up to ``grace`` s, then cancel (pending retries are lost)."""
        if self._workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.join(), grace)
        for h in self._timers:
            h.cancel()
        self._timers.clear()
        for t in self._workers:
            t.cancel()
        for t in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._workers = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def idle(self) -> bool:
        """Nothing queued, in flight or waiting to be retried."""
        return self.queue.empty() and not self._inflight and not self._timers

    # ------------------------------------------------------------------ observers

    def on_call_ended(self, record: Mapping[str, Any]) -> None:
        if self.config.after_call:
            self._enqueue(ENDED, self.config.after_call, {"call": dict(record)})

    def on_answered(self, event: Mapping[str, Any]) -> None:
        if self.config.in_call:
            self._enqueue(ANSWERED, self.config.in_call,
                          {k: v for k, v in event.items() if k != "event"})

    def _enqueue(self, event: str, urls: tuple[str, ...], payload: dict[str, Any]) -> None:
        for url in urls:
            did = uuid.uuid4().hex
            body = json.dumps({"event": event, "delivery": did, "sent_at": self.clock(),
                               **payload}, default=str, separators=(",", ":")).encode()
            call = payload.get("call")
            cid = (call if isinstance(call, Mapping) else payload).get("call_id")
            d = Delivery(event, url, body, did, call_id=str(cid) if cid else None)
            try:
                self.queue.put_nowait(d)
            except asyncio.QueueFull:
                self.metrics.webhooks.inc(event=event, result="dropped")
                log.warning("webhook %s to %s dropped: queue full (%d)", event, safe_url(url),
                            self.config.queue_size, extra={"call_id": d.call_id})

    # ------------------------------------------------------------------ delivery

    def headers(self, d: Delivery) -> dict[str, str]:
        ts = str(int(self.clock()))
        return {"Content-Type": "application/json", EVENT_HEADER: d.event,
                DELIVERY_HEADER: d.id, TIMESTAMP_HEADER: ts,
                SIGNATURE_HEADER: sign(self.config.secret, ts, d.body),
                "User-Agent": "callctl-webhooks/1"}

    async def _post(self, d: Delivery) -> int:
        headers = self.headers(d)
        if self._transport is not None:
            try:
                return await self._transport(d.url, d.body, headers, self.config.timeout)
            except Exception:
                return 0
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return await aiohttp_transport(self._session, d.url, d.body, headers,
                                       self.config.timeout)

    async def _worker(self) -> None:
        while True:
            d = await self.queue.get()
            self._inflight += 1
            try:
                await self.attempt(d)
            except Exception:
                log.exception("webhook worker error", extra={"call_id": d.call_id})
            finally:
                self._inflight -= 1
                self.queue.task_done()

    async def attempt(self, d: Delivery) -> None:
        """One HTTP attempt; on a retryable failure schedule the next one."""
        status = await self._post(d)
        self.delivered.append((d.id, d.url, status))
        del self.delivered[:-200]
        if 200 <= status < 300:
            self.metrics.webhooks.inc(event=d.event, result="ok")
            return
        d.attempt += 1
        self.metrics.webhook_attempt_failures.inc(event=d.event)
        what = f"HTTP {status}" if status else "no answer"
        self.last_error[safe_url(d.url)] = what
        if should_retry(status) and d.attempt <= self.config.retries:
            delay = self.backoff.compute(d.attempt - 1)
            log.info("webhook %s to %s: %s; retry %d/%d in %.1f s", d.event, safe_url(d.url),
                     what, d.attempt, self.config.retries, delay, extra={"call_id": d.call_id})
            self._schedule(d, delay)
            return
        self.metrics.webhooks.inc(event=d.event, result="failed")
        log.warning("webhook %s to %s failed after %d attempt(s): %s (delivery %s)", d.event,
                    safe_url(d.url), d.attempt, what, d.id, extra={"call_id": d.call_id})

    def _schedule(self, d: Delivery, delay: float) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            try:
                self.queue.put_nowait(d)
            except asyncio.QueueFull:
                self.metrics.webhooks.inc(event=d.event, result="dropped")
                log.warning("webhook %s to %s dropped on retry: queue full", d.event,
                            safe_url(d.url), extra={"call_id": d.call_id})

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)
