"""Operations shared by the CLI (``callctl``) and the admin HTTP API.

Every operation is an ``async`` method of :class:`Ops` returning plain JSON-able data, or
raising :class:`OpsError` with an HTTP-like ``status`` (400 bad input, 404 not found, 409
nothing published, 503 Redis/ARI unavailable), a message, and the offending input ``field``
(``"windows[1].start"``). The CLI maps statuses to exit codes (:func:`exit_code`); the admin
API returns them as they are.

User changes (opt-out, availability, alternate) are runtime overrides in the ``user:<id>``
hash that the call runtime reads on every call (``RedisStore.facts``): they take effect on the
next call without a publish. Every change is audited in the ``audit`` stream (who, when, what,
old and new value). Blocklist changes are audited too and announced to the controllers'
blocklist caches (:mod:`controller.shell.blocklist`).

``simulate`` walks a published (or draft) flow with the engine's pure generator
(:func:`controller.core.engine.run_call`), answering its commands from the current Redis state
(user facts, sticky agents, round-robin cursors, failover tests, blocklist) without changing
any of it, and from the given digits and time: no Asterisk involved.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import re
import time
import zoneinfo
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from pydantic import ValidationError
from redis.exceptions import RedisError

from controller.adapters.redis import RedisStore, StoreUnavailable
from controller.core.callerid import normalise, valid_did
from controller.core.calllog import iso
from controller.core.devices import DEVICE_CACHE_S, by_endpoint, device_view
from controller.core.eligibility import (
    check,
    effective_alternate,
    effective_receive_calls,
    effective_windows,
    user_zone,
)
from controller.core.flows.directory import DAYS, ID_RE, User, Window, normalise_alternate
from controller.core.flows.schema import FlowSet
from controller.core.model import (
    valid_endpoint,
)
from controller.core.overrides import user_facts
from controller.core.patterns import CALL_ID_RE as _CALL_ID_RE
from controller.core.patterns import DTMF_DIGITS as _DTMF
from controller.ops.simulate import SimLookups, simulate_flow
from controller.ops.timeline import call_events, describe
from controller.shell.blocklist import (
    BLOCK_CAUSE,
    Blocklist,
    PatternError,
    normalise_pattern,
    parse_entries,
)

__all__ = [
    "AUDIT_MAXLEN",
    "Ops",
    "OpsError",
    "exit_code",
    "facts_from",
    "parse_at",
    "parse_since",
    "parse_slots",
    "records_csv",
    "validate_alternate",
]

log = logging.getLogger("callctl.ops")

AUDIT_MAXLEN = 10_000
MAX_LIMIT = 100_000
_BY_JUNK = re.compile(r"[^\w.@:+-]")
_HHMM_RANGE = re.compile(r"^(\d{1,2}:\d{2})-(\d{1,2}:\d{2})$")


class OpsError(Exception):
    """Bad input (400), unknown thing (404), nothing published (409), unavailable (503)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field, "status": self.status}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def exit_code(err: OpsError) -> int:
    """CLI exit code of an error: 2 bad input (usage), 3 not found / unavailable, else 1."""
    if err.status in (400, 422):
        return 2
    if err.status in (404, 503):
        return 3
    return 1


P = ParamSpec("P")
T = TypeVar("T")


def _redis_errors(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except StoreUnavailable as e:
            raise OpsError(503, str(e)) from None
        except (RedisError, OSError) as e:
            raise OpsError(503, f"redis unavailable: {e.__class__.__name__}") from None

    return wrapper


# ============================================================================ pure helpers


def clean_by(by: str | None) -> str:
    """Who made a change, safe to store and print (``$SUDO_USER``, ``$USER``, token name)."""
    s = _BY_JUNK.sub("", (by or "").strip())[:64]
    return s or "unknown"


facts_from = user_facts
"""UserFacts from the raw Redis values (controller.core.overrides: the one parser, also used by
``RedisStore.facts``)."""


def window_text(w: Window) -> str:
    """``mon-fri 09:00-17:00`` (consecutive days as a range)."""
    idx = sorted(DAYS.index(d) for d in w.days)
    parts: list[str] = []
    i = 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        a, b = DAYS[idx[i]], DAYS[idx[j]]
        parts.append(a if i == j else (f"{a},{b}" if j == i + 1 else f"{a}-{b}"))
        i = j + 1
    return f"{','.join(parts)} {w.start}-{w.end}"


def parse_slots(slots: Sequence[str | Mapping[str, Any]],
                field: str = "windows") -> list[Window]:
    """Availability windows from CLI words or API objects.

    Words: a day spec (``mon-fri``, ``sat``, ``mon,wed``) followed by one or more ranges
    (``09:00-12:00 13:00-17:00``); several groups may follow each other, and one word may hold
    a whole group (``"mon-fri 09:00-17:00"``). Objects: ``{"days", "start", "end"}``."""
    windows: list[Window] = []
    days: str | None = None
    pending = False  # a day spec without a range yet

    def no_range(where: str) -> OpsError:
        return OpsError(400, f"day spec {days!r} has no time range (e.g. 09:00-17:00)", where)

    for i, s in enumerate(slots):
        if isinstance(s, Mapping):
            if pending:
                raise no_range(f"{field}[{i}]")
            try:
                windows.append(Window.model_validate(dict(s)))
            except ValidationError as e:
                err = e.errors()[0]
                loc = ".".join(str(x) for x in err.get("loc", ()))
                raise OpsError(400, _clean_msg(err.get("msg", "invalid window")),
                               f"{field}[{i}]" + (f".{loc}" if loc else "")) from None
            continue
        if not isinstance(s, str):
            raise OpsError(400, "a window is a string like 'mon-fri 09:00-17:00' or an object "
                           "{days, start, end}", f"{field}[{i}]")
        for w in s.split():
            m = _HHMM_RANGE.fullmatch(w)
            if m is None:
                if pending:
                    raise no_range(f"{field}[{i}]")
                days, pending = w.lower(), True
                continue
            if days is None:
                raise OpsError(400, f"time range {w!r} needs days before it "
                               f"(e.g. 'mon-fri {w}')", f"{field}[{i}]")
            try:
                windows.append(Window.model_validate(
                    {"days": days, "start": m.group(1), "end": m.group(2)}))
            except ValidationError as e:
                raise OpsError(400, _clean_msg(e.errors()[0].get("msg", "invalid window")),
                               f"{field}[{i}]") from None
            pending = False
    if pending:
        raise no_range(field)
    return windows


def _check_line(line: Any) -> None:
    """A failover test's line: a DID (``+`` and digits) or a department id, else 400."""
    if not isinstance(line, str) or len(line) > 64 or not (
            valid_did(line) or ID_RE.fullmatch(line)):
        raise OpsError(400, f"{str(line)[:80]!r} is not a DID (+ and digits) or a "
                       "department id", "line")


def _clean_msg(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def validate_alternate(spec: str, uid: str, users: Mapping[str, User]) -> str:
    """A runtime alternate for ``uid``: an external number (E.164-ish, normalised), ``sip:<ep>``
    or a known user (``user:<id>`` or a bare user id). Raises OpsError(400, field="alternate")."""
    s = (spec or "").strip()
    if not s:
        raise OpsError(400, "empty alternate (use --clear to remove it)", "alternate")
    if not s.startswith(("+", "sip:", "user:")) and s in users:
        s = "user:" + s
    if s.startswith("user:"):
        other = s[5:]
        if other == uid:
            raise OpsError(400, "a user cannot be their own alternate", "alternate")
        if not ID_RE.fullmatch(other) or other not in users:
            raise OpsError(400, f"unknown user {other!r}", "alternate")
        return s
    if s.startswith("sip:"):
        if not valid_endpoint(s[4:]):
            raise OpsError(400, f"{s[4:]!r} is not a valid PJSIP endpoint name", "alternate")
        return s
    norm = normalise_alternate(s)
    if norm is None or norm.startswith(("sip:", "user:")):
        raise OpsError(400, f"{spec!r} is not an external number (+E.164, e.g. +919876543210) "
                       "or a known user", "alternate")
    return norm


def _zone(name: str | None, field: str = "tz") -> zoneinfo.ZoneInfo | None:
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise OpsError(400, f"unknown time zone {name!r}", field) from None


def parse_at(text: str | None, tz: str, *, now: datetime | None = None) -> datetime:
    """``'2026-12-06 22:00'`` (read in ``tz``), an ISO time with an offset, or ``now``."""
    zone = _zone(tz) or zoneinfo.ZoneInfo("UTC")
    if text is None or text.strip().lower() in ("", "now"):
        return (now or datetime.now(UTC)).astimezone(zone)
    s = text.strip().replace("T", " ")
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise OpsError(400, f"{text!r} is not a time like '2026-12-06 22:00'", "at") from None
    return dt.replace(tzinfo=zone) if dt.tzinfo is None else dt


_DUR = re.compile(r"^(\d+)\s*([smhdw]?)$")
_DUR_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, *, now: float | None = None) -> float:
    """Epoch seconds from ``15m``/``2h``/``7d`` (ago), an ISO date/time (local time unless it
    has an offset) or epoch seconds."""
    now = time.time() if now is None else now
    s = (text or "").strip().lower()
    m = _DUR.fullmatch(s)
    if m and (m.group(2) or len(s) < 9):
        return now - int(m.group(1)) * _DUR_UNITS[m.group(2)]
    try:
        return float(s) if s.replace(".", "", 1).isdigit() else \
            datetime.fromisoformat(text.strip().replace("T", " ")).timestamp()
    except ValueError:
        raise OpsError(400, f"{text!r} is not a time (e.g. 15m, 2h, 7d, '2026-12-06 08:00')",
                       "since") from None


CSV_FIELDS = ("call_id", "started", "ended", "duration", "wait", "talk", "did", "caller",
              "result", "answered_by", "rang", "path", "failovers", "voicemail",
              "blocked_by", "flow_version")


def records_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """Call records as CSV (times in ISO UTC, lists joined with ' > ' or ';')."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in rows:
        rang = ";".join(f"{x.get('user') or x.get('address')}:{x.get('outcome')}"
                        for x in r.get("rang") or [])
        fos = ";".join(str(f.get("number") or f.get("line") or f.get("reason"))
                       for f in r.get("failovers") or [])
        vm = r.get("voicemail") or {}
        w.writerow([
            r.get("call_id"), iso(r.get("started")), iso(r.get("ended")), r.get("duration"),
            r.get("wait"), r.get("talk"), r.get("did"), r.get("caller"), r.get("result"),
            r.get("answered_by") or "", rang, " > ".join(r.get("path") or []), fos,
            vm.get("mailbox", "") if isinstance(vm, dict) else "", r.get("blocked_by") or "",
            r.get("flow_version", ""),
        ])
    return out.getvalue()


# ============================================================================ operations


class Ops:
    """The operations, over one RedisStore. ``controller``: the running Controller when the
    admin API runs inside it (its live flows and ARI state are used); None in the CLI."""

    def __init__(self, store: RedisStore, settings: Any = None, *,
                 controller: Any = None) -> None:
        self.store = store
        self.settings = settings
        self.controller = controller
        self.p = store.p
        self.r = store.redis
        self._devices: tuple[float, dict[str, Mapping[str, str]] | None] | None = None

    # ------------------------------------------------------------------ flows

    async def live_flows(self) -> tuple[int, FlowSet] | None:
        ctl = self.controller
        if ctl is not None and ctl.flows.current is not None:
            return ctl.flows.current  # type: ignore[no-any-return]
        from controller.adapters.redis import flowstore as publish

        try:
            return await publish.load_live(self.r, prefix=self.p)
        except (RedisError, OSError) as e:
            raise OpsError(503, f"redis unavailable: {e.__class__.__name__}") from None

    async def _flowset(self) -> tuple[int, FlowSet]:
        live = await self.live_flows()
        if live is None:
            raise OpsError(409, "no flows are published yet (callctl publish DIR)")
        return live

    async def _user(self, uid: str) -> tuple[FlowSet, User]:
        if not isinstance(uid, str) or not ID_RE.fullmatch(uid):
            raise OpsError(400, f"{uid!r} is not a user id", "user")
        _, fs = await self._flowset()
        user = fs.users.get(uid)
        if user is None:
            raise OpsError(404, f"unknown user {uid!r} (not in the published flows)", "user")
        return fs, user

    # ------------------------------------------------------------------ status

    async def status(self) -> dict[str, Any]:
        """Controller, ARI, AMI, Redis, live calls; ``ok`` when all answer."""
        out: dict[str, Any] = {}
        redis_ok = await self.store.ping()
        out["redis"] = {"ok": redis_ok, "url": self.store._safe_url()}
        out["ari"] = await self._ari_status()
        out["ami"] = await self._ami_status()
        out["controller"] = await self._controller_status(out["ari"])
        if redis_ok:
            try:
                live = await self.store.live_calls()
                out["live_calls"] = len(live)
                raw = await self.r.get(self.p + "flows:live")
                out["flows"] = {"live_version": int(raw) if raw else None}
                out["blocklist"] = {"entries": int(await self.r.hlen(self.p + "blocklist")),
                                    "blocked_calls": int(await self.r.get(
                                        self.p + "blocklist:blocked") or 0)}
                out["failover_tests"] = await self.store.failover_tests()
            except (StoreUnavailable, RedisError, OSError) as e:
                out["redis"] = {"ok": False, "url": self.store._safe_url(), "error": str(e)}
        out["ok"] = bool(out["redis"]["ok"] and out["ari"]["ok"]
                         and out["controller"]["connected"])
        return out

    async def _ari_status(self) -> dict[str, Any]:
        ctl = self.controller
        url = getattr(self.settings, "ari_url", None)
        try:
            if ctl is not None:
                info = await ctl.ari.asterisk_info()
            elif self.settings is not None:
                from controller.adapters.ari.client import AriClient

                async with AriClient(self.settings.ari_url, self.settings.ari_user,
                                     self.settings.ari_password, self.settings.app,
                                     timeout=2.0) as ari:
                    info = await ari.asterisk_info()
            else:
                return {"ok": False, "url": url, "error": "not configured"}
        except Exception as e:  # any failure means "not answering" here
            return {"ok": False, "url": url, "error": str(e)[:200]}
        version = ((info or {}).get("system") or {}).get("version")
        return {"ok": True, "url": url, "version": version}

    async def _ami_status(self) -> dict[str, Any]:
        ctl = self.controller
        if ctl is not None:
            return {"ok": bool(ctl.ami_ok)}
        s = self.settings
        if s is None:
            return {"ok": False, "error": "not configured"}
        from controller.adapters.ami import Ami

        ami = Ami(s.ami_host, s.ami_port, s.ami_user, s.ami_secret)
        try:
            await ami.connect(timeout=2.0)
            return {"ok": True, "port": s.ami_port}
        except Exception as e:
            return {"ok": False, "port": s.ami_port, "error": str(e)[:200] or type(e).__name__}
        finally:
            await ami.close()

    async def _controller_status(self, ari: Mapping[str, Any]) -> dict[str, Any]:
        ctl = self.controller
        if ctl is not None:
            live = ctl.flows.current
            return {"connected": bool(ctl.stream.connected), "app": ctl.app,
                    "calls_in_progress": len(ctl.calls), "calls_total": ctl.calls_total,
                    "flow_version": live[0] if live else None}
        s = self.settings
        if s is None or not ari.get("ok"):
            return {"connected": False, "app": getattr(s, "app", None)}
        from controller.adapters.ari.client import AriClient
        from controller.adapters.ari.errors import AriError

        # A controller holds the Stasis app's event websocket: Asterisk lists the app then.
        async with AriClient(s.ari_url, s.ari_user, s.ari_password, s.app, timeout=2.0) as c:
            try:
                await c.request("GET", f"/applications/{s.app}")
                return {"connected": True, "app": s.app}
            except AriError:
                return {"connected": False, "app": s.app}

    # ------------------------------------------------------------------ calls

    @_redis_errors
    async def calls(self, *, live: bool = False, since: float | None = None,
                    limit: int | None = None) -> list[dict[str, Any]]:
        """Live calls, or finished calls newest first, or (``since``) oldest first."""
        if limit is not None and not 1 <= int(limit) <= MAX_LIMIT:
            raise OpsError(400, f"limit must be 1..{MAX_LIMIT}", "limit")
        if live:
            rows = await self.store.live_calls()
            now = time.time()
            out = []
            for r in rows:
                row: dict[str, Any] = dict(r)
                row["call_id"] = row.pop("id", None)
                try:
                    row["started"] = float(row.get("started", 0))
                    row["age"] = round(now - row["started"], 1)
                except (TypeError, ValueError):
                    pass
                row["result"] = "live"
                out.append(row)
            return out[: limit or None]
        if since is not None:
            raw = await self.r.xrange(self.p + "calllog", min=f"{int(since * 1000)}",
                                      max="+", count=limit or MAX_LIMIT)
            return [json.loads(f["record"]) for _, f in raw]
        return await self.store.recent_calls(limit or 50)

    @_redis_errors
    async def call(self, call_id: str) -> dict[str, Any]:
        """One call: its record (or live state), decision trace and event timeline."""
        if not isinstance(call_id, str) or not _CALL_ID_RE.fullmatch(call_id):
            raise OpsError(400, f"{call_id!r} is not a call id", "call_id")
        live = await self.r.hgetall(self.p + f"call:{call_id}")
        trace = await self.store.get_trace(call_id)
        record = await self.store.find_call(call_id) if trace is not None or not live else None
        if not live and trace is None and record is None:
            raise OpsError(404, f"no call {call_id!r} (live or in the call log)", "call_id")
        started = (record or {}).get("started")
        if started is None and live.get("started"):
            started = float(live["started"])
        return {"call_id": call_id, "live": dict(live) if live else None, "record": record,
                "trace": trace or [], "events": call_events(trace or [], started)}

    # ------------------------------------------------------------------ users

    async def _user_raw(self, uids: Sequence[str]) -> list[tuple[Any, ...]]:
        async with self.r.pipeline(transaction=False) as pipe:
            for u in uids:
                pipe.get(self.p + f"busy:{u}")
                pipe.zscore(self.p + "lastcall", u)
                pipe.hgetall(self.p + f"user:{u}")
                pipe.hgetall(self.p + f"stats:agent:{u}")
            raw = await pipe.execute()
        return [tuple(raw[4 * i: 4 * i + 4]) for i in range(len(uids))]

    async def devices(self) -> dict[str, Mapping[str, str]] | None:
        """Every PJSIP endpoint's ``EndpointList`` row from AMI (controller.core.devices), cached
        for DEVICE_CACHE_S s; None when AMI does not answer (the states are "unknown")."""
        now = time.monotonic()
        if self._devices is not None and now - self._devices[0] < DEVICE_CACHE_S:
            return self._devices[1]
        from controller.adapters.ami import Ami

        rows: dict[str, Mapping[str, str]] | None = None
        ctl = self.controller
        try:
            if ctl is not None:
                if ctl.ami_ok:
                    rows = by_endpoint(await ctl.ami.endpoints())
            elif self.settings is not None:
                s = self.settings
                ami = Ami(s.ami_host, s.ami_port, s.ami_user, s.ami_secret)
                try:
                    await ami.connect(timeout=2.0)
                    rows = by_endpoint(await ami.endpoints())
                finally:
                    await ami.close()
        except Exception as e:  # any failure: the device states are unknown
            rows = None
            log.info("device states unknown: AMI: %s", str(e)[:200] or type(e).__name__)
        self._devices = (now, rows)
        return rows

    @_redis_errors
    async def users(self, *, at: datetime | None = None) -> list[dict[str, Any]]:
        """Every user: the flow's values, runtime overrides, effective values, busy/idle,
        whether they could be rung now (and why not), answered/missed counts, and their
        phone's state (controller.core.devices)."""
        _, fs = await self._flowset()
        uids = list(fs.users)
        raw = await self._user_raw(uids)
        devices = await self.devices()
        at = at or datetime.now(UTC)
        depts: dict[str, list[str]] = {}
        for d in fs.departments.values():
            for m in d.members:
                depts.setdefault(m, []).append(d.id)
        return [self._user_view(fs.users[u], r, at, fs, depts.get(u, []),
                                (devices or {}).get(fs.users[u].endpoint))
                for u, r in zip(uids, raw, strict=True)]

    @_redis_errors
    async def user(self, uid: str) -> dict[str, Any]:
        fs, user = await self._user(uid)
        (raw,) = await self._user_raw([uid])
        devices = await self.devices()
        depts = [d.id for d in fs.departments.values() if uid in d.members]
        return self._user_view(user, raw, datetime.now(UTC), fs, depts,
                               (devices or {}).get(user.endpoint))

    def _user_view(self, user: User, raw: tuple[Any, ...], at: datetime, fs: FlowSet,
                   depts: list[str], device: Mapping[str, str] | None = None,
                   ) -> dict[str, Any]:
        busy, last, over, stats = raw
        facts = facts_from(busy, last, over, f"{self.p}user:{user.id}")
        e = check(user, facts, at, fs.settings)
        windows = effective_windows(user, facts)
        return {
            "id": user.id, "name": user.name, "endpoint": user.endpoint,
            "extension": user.extension, "device": device_view(device), "departments": depts,
            "flow": {"receive_calls": user.receive_calls,
                     "availability": [window_text(w) for w in user.availability],
                     "timezone": user.timezone or fs.settings.timezone,
                     "alternate": user.alternate},
            "overrides": {k: v for k, v in (over or {}).items()},
            "effective": {"receive_calls": effective_receive_calls(user, facts),
                          "availability": [window_text(w) for w in windows],
                          "timezone": str(user_zone(user, fs.settings, facts)),
                          "alternate": effective_alternate(user, facts)},
            "state": "busy" if busy else "idle", "busy_call": busy or None,
            "last_call_end": float(last) if last is not None else None,
            "eligible_now": e.ok, "reason": e.reason,
            "answered": int((stats or {}).get("answered", 0)),
            "missed": int((stats or {}).get("missed", 0)),
        }

    async def _set_override(self, uid: str, changes: Mapping[str, str | None], action: str,
                            by: str) -> dict[str, Any]:
        """HSET/HDEL overrides and append the audit entry, in one transaction."""
        key = self.p + f"user:{uid}"
        old = await self.r.hgetall(key)
        entry = {"at": f"{time.time():.3f}", "by": clean_by(by), "action": action,
                 "target": uid,
                 "old": json.dumps({k: old.get(k) for k in changes}),
                 "new": json.dumps(dict(changes))}
        async with self.r.pipeline(transaction=True) as pipe:
            for k, v in changes.items():
                if v is None:
                    pipe.hdel(key, k)
                else:
                    pipe.hset(key, k, v)
            pipe.xadd(self.p + "audit", entry, maxlen=AUDIT_MAXLEN, approximate=True)
            await pipe.execute()
        return {"user": uid, "action": action, "by": entry["by"], "changes": dict(changes)}

    @_redis_errors
    async def set_opt_out(self, uid: str, opted_out: bool | None, *, by: str) -> dict[str, Any]:
        """Opt a user out (True) or in (False) of every routed call; None drops the override
        (the published ``receive_calls`` applies again)."""
        await self._user(uid)
        value = None if opted_out is None else ("0" if opted_out else "1")
        action = {None: "opt_out.reset", "0": "opt_out.on", "1": "opt_out.off"}[value]
        res = await self._set_override(uid, {"receive_calls": value}, action, by)
        return {**res, **(await self.user(uid))["effective"], "user": uid}

    @_redis_errors
    async def set_availability(self, uid: str, windows: Sequence[str | Mapping[str, Any]]
                               | None, *, by: str, tz: str | None = None,
                               mode: str = "set") -> dict[str, Any]:
        """``mode``: ``set`` these windows (read in ``tz``, default the user's zone),
        ``always`` (available at any time), ``reset`` (the published windows apply)."""
        _fs, _user = await self._user(uid)
        if mode == "reset":
            changes: dict[str, str | None] = {"availability": None, "timezone": None}
        elif mode == "always":
            changes = {"availability": "[]", "timezone": None}
        elif mode == "set":
            if not windows:
                raise OpsError(400, "give at least one window (or --clear / --reset)",
                               "windows")
            parsed = parse_slots(windows)
            _zone(tz)
            changes = {"availability": json.dumps([w.model_dump(mode="json") for w in parsed]),
                       "timezone": tz or None}
        else:
            raise OpsError(400, f"unknown mode {mode!r} (set, always, reset)", "mode")
        res = await self._set_override(uid, changes, f"availability.{mode}", by)
        return {**res, **(await self.user(uid))["effective"], "user": uid}

    @_redis_errors
    async def set_alternate(self, uid: str, alternate: str | None, *, by: str,
                            reset: bool = False) -> dict[str, Any]:
        """Set the alternate (number or user), clear it (None: no alternate even if the flow
        has one), or ``reset`` (the published alternate applies again)."""
        fs, _user = await self._user(uid)
        if reset:
            value, action = None, "alternate.reset"
        elif alternate is None:
            value, action = "", "alternate.clear"
        else:
            value, action = validate_alternate(alternate, uid, fs.users), "alternate.set"
        res = await self._set_override(uid, {"alternate": value}, action, by)
        return {**res, **(await self.user(uid))["effective"], "user": uid}

    @_redis_errors
    async def audit(self, *, limit: int = 50, target: str | None = None) -> list[dict[str, Any]]:
        """Audit entries, newest first (``target``: one user or blocklist pattern)."""
        if not 1 <= int(limit) <= MAX_LIMIT:
            raise OpsError(400, f"limit must be 1..{MAX_LIMIT}", "limit")
        out: list[dict[str, Any]] = []
        last = "+"
        while len(out) < limit:
            rows = await self.r.xrevrange(self.p + "audit", max=last, count=500)
            for rid, f in rows:
                if target is None or f.get("target") == target:
                    e: dict[str, Any] = {"id": rid, **f}
                    for k in ("old", "new"):
                        try:
                            e[k] = json.loads(f.get(k, "null"))
                        except ValueError:
                            pass
                    e["at"] = float(f.get("at", 0))
                    out.append(e)
            if len(rows) < 500:
                break
            last = "(" + rows[-1][0]
        return out[:limit]

    # ------------------------------------------------------------------ departments

    @_redis_errors
    async def departments(self) -> list[dict[str, Any]]:
        """Departments: strategy, members with their state now, answered/missed counts
        (per department and per agent; agents opted out now are left out of the counts)."""
        _, fs = await self._flowset()
        members = sorted({m for d in fs.departments.values() for m in d.members
                          if m in fs.users})
        raw = dict(zip(members, await self._user_raw(members), strict=True))
        async with self.r.pipeline(transaction=False) as pipe:
            for d in fs.departments:
                pipe.hgetall(self.p + f"stats:dept:{d}")
            stats = dict(zip(fs.departments, await pipe.execute(), strict=True))
        at = datetime.now(UTC)
        out = []
        for d in fs.departments.values():
            st = stats.get(d.id) or {}
            people = []
            agents = []
            for m in d.members:
                user = fs.users.get(m)
                if user is None:
                    people.append({"id": m, "state": "unknown_user"})
                    continue
                busy, last, over, _ = raw[m]
                facts = facts_from(busy, last, over, f"{self.p}user:{m}")
                e = check(user, facts, at, fs.settings)
                opted_out = not effective_receive_calls(user, facts)
                people.append({"id": m, "name": user.name, "state": "busy" if busy else "idle",
                               "eligible_now": e.ok, "reason": e.reason,
                               "opted_out": opted_out})
                if not opted_out:
                    agents.append({"id": m, "answered": int(st.get(f"{m}:answered", 0)),
                                   "missed": int(st.get(f"{m}:missed", 0))})
            fo = d.failover
            out.append({
                "id": d.id, "name": d.name, "strategy": d.strategy,
                "sticky": d.sticky.ttl if d.sticky else None, "ring_time": d.ring_time,
                "rounds": d.rounds, "total_timeout": d.total_timeout,
                "failover": {"number": fo.number if fo else None,
                             "voicemail": fo.voicemail if fo else True},
                "members": people, "agents": agents,
                "calls": int(st.get("calls", 0)), "answered": int(st.get("answered", 0)),
                "missed": int(st.get("missed", 0)),
            })
        return out

    # ------------------------------------------------------------------ blocklist

    @_redis_errors
    async def block(self, number: str, *, reason: str = "", by: str) -> dict[str, Any]:
        """Block a caller number, a ``prefix*`` or ``withheld``. Idempotent (updates the
        reason)."""
        try:
            pattern = normalise_pattern(number)
        except PatternError as e:
            raise OpsError(400, str(e), "number") from None
        reason = " ".join((reason or "").split())[:200]
        entry = {"reason": reason, "by": clean_by(by), "at": round(time.time(), 3)}
        p = self.p
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hexists(p + "blocklist", pattern)
            pipe.hset(p + "blocklist", pattern, json.dumps(entry))
            pipe.incr(p + "blocklist:version")
            pipe.xadd(p + "audit", {"at": f"{entry['at']:.3f}", "by": entry["by"],
                                    "action": "block", "target": pattern,
                                    "old": "null", "new": json.dumps({"reason": reason})},
                      maxlen=AUDIT_MAXLEN, approximate=True)
            pipe.publish(p + "blocklist:changed", pattern)
            res = await pipe.execute()
        return {"pattern": pattern, **entry, "updated": bool(res[0])}

    @_redis_errors
    async def unblock(self, number: str, *, by: str) -> dict[str, Any]:
        try:
            pattern = normalise_pattern(number)
        except PatternError as e:
            raise OpsError(400, str(e), "number") from None
        p = self.p
        old = await self.r.hget(p + "blocklist", pattern)
        if old is None:
            raise OpsError(404, f"{pattern} is not blocked", "number")
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hdel(p + "blocklist", pattern)
            pipe.incr(p + "blocklist:version")
            pipe.xadd(p + "audit", {"at": f"{time.time():.3f}", "by": clean_by(by),
                                    "action": "unblock", "target": pattern, "old": old,
                                    "new": "null"},
                      maxlen=AUDIT_MAXLEN, approximate=True)
            pipe.publish(p + "blocklist:changed", pattern)
            await pipe.execute()
        return {"pattern": pattern, "unblocked": True}

    @_redis_errors
    async def blocked(self) -> dict[str, Any]:
        """The blocklist with each pattern's rejected attempts, and the total."""
        p = self.p
        raw = await self.r.hgetall(p + "blocklist")
        hits = await self.r.hgetall(p + "blocklist:hits")
        total = int(await self.r.get(p + "blocklist:blocked") or 0)
        entries = parse_entries(raw)
        rows = [{"pattern": pat, "reason": e.get("reason", ""), "by": e.get("by"),
                 "at": e.get("at"), "blocked_calls": int(hits.get(pat, 0))}
                for pat, e in sorted(entries.items())]
        return {"entries": rows, "blocked_calls": total, "cause": BLOCK_CAUSE}

    async def blocklist(self) -> Blocklist:
        raw = await self.r.hgetall(self.p + "blocklist")
        return Blocklist(parse_entries(raw))

    # ------------------------------------------------------------------ failover tests

    @_redis_errors
    async def failover_start(self, line: str, seconds: int, *, by: str) -> dict[str, Any]:
        _check_line(line)
        _, fs = await self._flowset()
        lines = set(fs.did_map) | set(fs.departments)
        if line not in lines:
            raise OpsError(404, f"{line!r} is not a published DID or department (known: "
                           f"{', '.join(sorted(lines)) or 'none'})", "line")
        if not isinstance(seconds, int) or not 0 < seconds <= 7 * 86400:
            raise OpsError(400, "duration must be 1 s to 7 days", "seconds")
        until = await self.store.failover_test_start(line, seconds, clean_by(by))
        return {"line": line, "until": until, "by": clean_by(by)}

    @_redis_errors
    async def failover_stop(self, line: str, *, by: str) -> dict[str, Any]:
        """Stop the test on a line: 404 when the line is neither published nor under a test
        (a published line without a test: ``stopped`` false)."""
        _check_line(line)
        if line not in await self.store.failover_tests():
            live = await self.live_flows()
            known = set(live[1].did_map) | set(live[1].departments) if live else set()
            if line not in known:
                raise OpsError(404, f"{line!r} is not a published DID or department and has "
                               "no failover test", "line")
        stopped = await self.store.failover_test_stop(line, clean_by(by))
        return {"line": line, "stopped": stopped}

    @_redis_errors
    async def failover_status(self, limit: int = 20) -> dict[str, Any]:
        return {"active": await self.store.failover_tests(),
                "events": await self.store.failover_events(limit)}

    # ------------------------------------------------------------------ simulate

    @_redis_errors
    async def simulate(self, *, did: str, caller: str = "", at: str | datetime | None = None,
                       tz: str | None = None, digits: Sequence[str] = (),
                       flowset: FlowSet | None = None, answer: str | None = None,
                       ) -> dict[str, Any]:
        """Dry-run a call (see :func:`simulate_flow`); ``flowset``: a draft instead of the
        published flows. Reads live state, changes nothing."""
        if not isinstance(did, str) or not valid_did(did):
            raise OpsError(400, f"{did!r} is not a DID (digits, optional leading +)", "did")
        norm = normalise(caller or "")
        if caller and not norm and caller.strip().lower() not in ("", "withheld", "anonymous"):
            raise OpsError(400, f"{caller!r} is not a caller number", "from")
        for i, d in enumerate(digits):
            if not isinstance(d, str) or any(c not in _DTMF for c in d):
                raise OpsError(400, f"{d!r} is not DTMF (0-9 * # A-D)", f"digits[{i}]")
        version: int | None = None
        if flowset is None:
            version, fs = await self._flowset()
        else:
            fs = flowset
        when = at if isinstance(at, datetime) else parse_at(at, tz or fs.settings.timezone)
        base = {"did": did, "caller": norm, "at": when.isoformat(timespec="minutes"),
                "flow_version": version, "draft": flowset is not None}
        hit = (await self.blocklist()).match(norm)
        if hit is not None:
            return {**base, "result": "blocked", "blocked_by": hit, "cause": BLOCK_CAUSE,
                    "path": [], "rings": [], "first_ring": None, "ring_order": [],
                    "skips": [], "steps": [describe({"kind": "blocked", "pattern": hit,
                                                     "cause": BLOCK_CAUSE})],
                    "notes": [], "prompts": [], "digits_unused": list(digits), "trace": []}
        if fs.flow_for_did(did) is None:
            return {**base, "result": "no_flow", "cause": 1, "path": [], "rings": [],
                    "first_ring": None, "ring_order": [], "skips": [],
                    "steps": [f"no published flow for DID {did}: rejected with cause 1"],
                    "notes": [], "prompts": [], "digits_unused": list(digits), "trace": []}
        tests = frozenset(await self.store.failover_tests())

        async def cursor(key: str) -> int:
            raw = await self.r.get(self.p + key)
            return int(raw) if raw else 0

        lookups = SimLookups(facts=self.store.facts, sticky=self.store.get_sticky,
                             cursor=cursor)
        res = await simulate_flow(fs, did=did, caller=norm, at=when, digits=digits,
                                  answer=answer, lookups=lookups, failover_tests=tests)
        return {**res, **base}
