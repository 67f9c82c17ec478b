"""`callctl status`, ``GET /status``: controller, ARI, AMI, Redis, live calls."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.exceptions import RedisError

from controller.adapters.redis import StoreUnavailable


class StatusOps:

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
