"""Users: their state, and runtime overrides (opt-out, availability, alternate), audited."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from controller.core.devices import DEVICE_CACHE_S, by_endpoint, device_view
from controller.core.eligibility import (
    check,
    effective_alternate,
    effective_receive_calls,
    effective_windows,
    user_zone,
)
from controller.core.flows.directory import User
from controller.core.flows.schema import FlowSet
from controller.core.overrides import user_facts
from controller.core.patterns import ID_RE
from controller.ops.audit import AUDIT_MAXLEN
from controller.ops.context import Context, redis_errors
from controller.ops.errors import OpsError
from controller.ops.flows import published
from controller.ops.parse import (
    clean_by,
    parse_slots,
    parse_zone,
    validate_alternate,
    window_text,
)

log = logging.getLogger("callctl.ops")


async def find_user(ctx: Context, uid: str) -> tuple[FlowSet, User]:
    """The published flows and user ``uid`` in them: OpsError 400 (not an id) or 404."""
    if not isinstance(uid, str) or not ID_RE.fullmatch(uid):
        raise OpsError(400, f"{uid!r} is not a user id", "user")
    _, fs = await published(ctx)
    user = fs.users.get(uid)
    if user is None:
        raise OpsError(404, f"unknown user {uid!r} (not in the published flows)", "user")
    return fs, user


async def user_raw(ctx: Context, uids: Sequence[str]) -> list[tuple[Any, ...]]:
    """Per user: (busy call, last call end, overrides hash, answered/missed hash)."""
    async with ctx.r.pipeline(transaction=False) as pipe:
        for u in uids:
            pipe.get(ctx.keys.busy(u))
            pipe.zscore(ctx.keys.lastcall, u)
            pipe.hgetall(ctx.keys.user(u))
            pipe.hgetall(ctx.keys.agent_stats(u))
        raw = await pipe.execute()
    return [tuple(raw[4 * i: 4 * i + 4]) for i in range(len(uids))]


async def devices(ctx: Context) -> dict[str, Mapping[str, str]] | None:
    """Every PJSIP endpoint's ``EndpointList`` row from AMI (controller.core.devices), cached
    for DEVICE_CACHE_S s; None when AMI does not answer (the states are "unknown")."""
    now = time.monotonic()
    if ctx.devices is not None and now - ctx.devices[0] < DEVICE_CACHE_S:
        return ctx.devices[1]
    from controller.adapters.ami import Ami

    rows: dict[str, Mapping[str, str]] | None = None
    ctl = ctx.controller
    try:
        if ctl is not None:
            if ctl.ami_ok:
                rows = by_endpoint(await ctl.ami.endpoints())
        elif ctx.settings is not None:
            s = ctx.settings
            ami = Ami(s.ami_host, s.ami_port, s.ami_user, s.ami_secret)
            try:
                await ami.connect(timeout=2.0)
                rows = by_endpoint(await ami.endpoints())
            finally:
                await ami.close()
    except Exception as e:  # any failure: the device states are unknown
        rows = None
        log.info("device states unknown: AMI: %s", str(e)[:200] or type(e).__name__)
    ctx.devices = (now, rows)
    return rows


@redis_errors
async def list_users(ctx: Context, *, at: datetime | None = None) -> list[dict[str, Any]]:
    """Every user: the flow's values, runtime overrides, effective values, busy/idle,
    whether they could be rung now (and why not), answered/missed counts, and their
    phone's state (controller.core.devices)."""
    _, fs = await published(ctx)
    uids = list(fs.users)
    raw = await user_raw(ctx, uids)
    phones = await devices(ctx)
    at = at or datetime.now(UTC)
    depts: dict[str, list[str]] = {}
    for d in fs.departments.values():
        for m in d.members:
            depts.setdefault(m, []).append(d.id)
    return [_view(ctx, fs.users[u], r, at, fs, depts.get(u, []),
                            (phones or {}).get(fs.users[u].endpoint))
            for u, r in zip(uids, raw, strict=True)]


@redis_errors
async def get_user(ctx: Context, uid: str) -> dict[str, Any]:
    """One user, as :func:`list_users` shows each."""
    fs, user = await find_user(ctx, uid)
    (raw,) = await user_raw(ctx, [uid])
    phones = await devices(ctx)
    depts = [d.id for d in fs.departments.values() if uid in d.members]
    return _view(ctx, user, raw, datetime.now(UTC), fs, depts,
                           (phones or {}).get(user.endpoint))


def _view(ctx: Context, user: User, raw: tuple[Any, ...], at: datetime, fs: FlowSet,
          depts: list[str], device: Mapping[str, str] | None = None,
          ) -> dict[str, Any]:
    busy, last, over, stats = raw
    facts = user_facts(busy, last, over, ctx.keys.user(user.id))
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


async def _set_override(ctx: Context, uid: str, changes: Mapping[str, str | None], action: str,
                        by: str) -> dict[str, Any]:
    """HSET/HDEL overrides and append the audit entry, in one transaction."""
    key = ctx.keys.user(uid)
    old = await ctx.r.hgetall(key)
    entry = {"at": f"{time.time():.3f}", "by": clean_by(by), "action": action,
             "target": uid,
             "old": json.dumps({k: old.get(k) for k in changes}),
             "new": json.dumps(dict(changes))}
    async with ctx.r.pipeline(transaction=True) as pipe:
        for k, v in changes.items():
            if v is None:
                pipe.hdel(key, k)
            else:
                pipe.hset(key, k, v)
        pipe.xadd(ctx.keys.audit, entry, maxlen=AUDIT_MAXLEN, approximate=True)
        await pipe.execute()
    return {"user": uid, "action": action, "by": entry["by"], "changes": dict(changes)}


@redis_errors
async def set_opt_out(ctx: Context, uid: str, opted_out: bool | None, *, by: str) -> dict[str, Any]:
    """Opt a user out (True) or in (False) of every routed call; None drops the override
    (the published ``receive_calls`` applies again)."""
    await find_user(ctx, uid)
    value = None if opted_out is None else ("0" if opted_out else "1")
    action = {None: "opt_out.reset", "0": "opt_out.on", "1": "opt_out.off"}[value]
    res = await _set_override(ctx, uid, {"receive_calls": value}, action, by)
    return {**res, **(await get_user(ctx, uid))["effective"], "user": uid}


@redis_errors
async def set_availability(ctx: Context, uid: str, windows: Sequence[str | Mapping[str, Any]]
                           | None, *, by: str, tz: str | None = None,
                           mode: str = "set") -> dict[str, Any]:
    """``mode``: ``set`` these windows (read in ``tz``, default the user's zone),
    ``always`` (available at any time), ``reset`` (the published windows apply)."""
    _fs, _user = await find_user(ctx, uid)
    if mode == "reset":
        changes: dict[str, str | None] = {"availability": None, "timezone": None}
    elif mode == "always":
        changes = {"availability": "[]", "timezone": None}
    elif mode == "set":
        if not windows:
            raise OpsError(400, "give at least one window (or --clear / --reset)",
                           "windows")
        parsed = parse_slots(windows)
        parse_zone(tz)
        changes = {"availability": json.dumps([w.model_dump(mode="json") for w in parsed]),
                   "timezone": tz or None}
    else:
        raise OpsError(400, f"unknown mode {mode!r} (set, always, reset)", "mode")
    res = await _set_override(ctx, uid, changes, f"availability.{mode}", by)
    return {**res, **(await get_user(ctx, uid))["effective"], "user": uid}


@redis_errors
async def set_alternate(ctx: Context, uid: str, alternate: str | None, *, by: str,
                        reset: bool = False) -> dict[str, Any]:
    """Set the alternate (number or user), clear it (None: no alternate even if the flow
    has one), or ``reset`` (the published alternate applies again)."""
    fs, _user = await find_user(ctx, uid)
    if reset:
        value, action = None, "alternate.reset"
    elif alternate is None:
        value, action = "", "alternate.clear"
    else:
        value, action = validate_alternate(alternate, uid, fs.users), "alternate.set"
    res = await _set_override(ctx, uid, {"alternate": value}, action, by)
    return {**res, **(await get_user(ctx, uid))["effective"], "user": uid}
