"""`callctl status`, ``GET /status``: controller, ARI, AMI, Redis, live calls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.exceptions import RedisError

from controller.adapters.redis import StoreUnavailable
from controller.ops.context import Context


async def get_status(ctx: Context) -> dict[str, Any]:
    """Controller, ARI, AMI, Redis, live calls; ``ok`` when all answer."""
    out: dict[str, Any] = {}
    redis_ok = await ctx.store.ping()
    out["redis"] = {"ok": redis_ok, "url": ctx.store._safe_url()}
    out["ari"] = await _ari(ctx)
    out["ami"] = await _ami(ctx)
    out["controller"] = await _controller(ctx, out["ari"])
    if redis_ok:
        try:
            live = await ctx.store.live_calls()
            out["live_calls"] = len(live)
            raw = await ctx.r.get(ctx.keys.flows_live)
            out["flows"] = {"live_version": int(raw) if raw else None}
            out["blocklist"] = {"entries": int(await ctx.r.hlen(ctx.keys.blocklist)),
                                "blocked_calls": int(await ctx.r.get(
                                    ctx.keys.blocklist_blocked) or 0)}
            out["failover_tests"] = await ctx.store.failover_tests()
        except (StoreUnavailable, RedisError, OSError) as e:
            out["redis"] = {"ok": False, "url": ctx.store._safe_url(), "error": str(e)}
    out["ok"] = bool(out["redis"]["ok"] and out["ari"]["ok"]
                     and out["controller"]["connected"])
    return out


async def _ari(ctx: Context) -> dict[str, Any]:
    ctl = ctx.controller
    url = getattr(ctx.settings, "ari_url", None)
    try:
        if ctl is not None:
            info = await ctl.ari.asterisk_info()
        elif ctx.settings is not None:
            from controller.adapters.ari.client import AriClient

            async with AriClient(ctx.settings.ari_url, ctx.settings.ari_user,
                                 ctx.settings.ari_password, ctx.settings.app,
                                 timeout=2.0) as ari:
                info = await ari.asterisk_info()
        else:
            return {"ok": False, "url": url, "error": "not configured"}
    except Exception as e:  # any failure means "not answering" here
        return {"ok": False, "url": url, "error": str(e)[:200]}
    version = ((info or {}).get("system") or {}).get("version")
    return {"ok": True, "url": url, "version": version}


async def _ami(ctx: Context) -> dict[str, Any]:
    ctl = ctx.controller
    if ctl is not None:
        return {"ok": bool(ctl.ami_ok)}
    s = ctx.settings
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


async def _controller(ctx: Context, ari: Mapping[str, Any]) -> dict[str, Any]:
    ctl = ctx.controller
    if ctl is not None:
        live = ctl.flows.current
        return {"connected": bool(ctl.stream.connected), "app": ctl.app,
                "calls_in_progress": len(ctl.calls), "calls_total": ctl.calls_total,
                "flow_version": live[0] if live else None}
    s = ctx.settings
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
