"""A controller process's side services: metrics, webhooks and the admin HTTP API.

The Controller owns one :class:`Services`; it feeds it finished call records (observers) and
live call events (``live_observers``) and starts/stops it with itself. Nothing here is on a
call's critical path: observers only count and enqueue. The admin API is made above the shell
(controller.tools.app) and handed in (:class:`AdminApi`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Protocol

from controller.adapters.ari.client import AriClient
from controller.adapters.metrics import LoopLag, Metrics
from controller.adapters.redis import RedisStore
from controller.adapters.webhooks import WebhookConfig, Webhooks, WebhookSecretError
from controller.config import Settings, StartupError

if TYPE_CHECKING:
    from controller.shell.live import LiveFlows

log = logging.getLogger("callctl.services")
PROBE_S = 5.0
"""How often Redis and ARI are probed for ``callctl_redis_up`` and ``callctl_build_info``."""


class ServicesHost(Protocol):
    """What the services use of their controller (controller.shell.runtime.Controller is
    one): typed here so that this module does not import the runtime (which imports it)."""

    settings: Settings
    calls: dict[str, Any]
    store: RedisStore
    ari: AriClient
    flows: LiveFlows
    store_degraded: bool
    writeback_dropped: int
    observers: list[Any]
    live_observers: list[Any]

    def pending_writes(self) -> int: ...


class AdminApi(Protocol):
    """The admin HTTP API as the services start and stop it: made by the process's
    composition root (controller.tools.app) and handed in as ``Services.admin_api``."""

    @property
    def url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def ari_nodes(ctl: ServicesHost, *, held_only: bool = True) -> list[Any]:
    """The Asterisk nodes this controller serves: objects with ``name``, ``ari``, ``stream``
    and ``held``. With ``held_only``, the nodes it holds now (none held: the first one)."""
    cluster = getattr(ctl, "cluster", None)
    if cluster is None:
        return [ctl]
    if held_only:
        return list(cluster.held()) or [cluster.first]
    return list(cluster.nodes.values())


class Services:
    def __init__(self, ctl: ServicesHost) -> None:
        self.ctl = ctl
        s = ctl.settings
        self.metrics = Metrics()
        self.loop_lag = LoopLag()
        self.metrics.live_calls.func = lambda: float(len(ctl.calls))
        self.metrics.writeback_pending.func = lambda: float(ctl.pending_writes())
        self.metrics.writeback_dropped.func = lambda: float(ctl.writeback_dropped)
        self.metrics.ari_reconnects.func = lambda: float(
            sum(n.stream.reconnects for n in ari_nodes(ctl, held_only=False)))
        self.metrics.ari_app_replaced.func = lambda: float(
            sum(n.stream.replaced for n in ari_nodes(ctl, held_only=False)))
        self.metrics.loop_lag.func = lambda: self.loop_lag.last
        self.metrics.loop_lag_max.func = self.loop_lag.max
        self.metrics.ari_up.collect = self._ari_up
        self.redis_ok = False
        """Redis answered the last probe (every PROBE_S) and no call saw it fail since."""
        self.metrics.redis_up.func = lambda: float(self.redis_ok and not ctl.store_degraded)
        self._asterisk = ""
        self._probe_task: asyncio.Task[None] | None = None
        # label values for flows/departments: the published ids (bounded, see metrics)
        ctl.flows.on_change.append(
            lambda version, fs: self.metrics.known(fs.flows, fs.departments))
        secret = s.webhook_secret
        if (s.webhook_after_call or s.webhook_in_call) and not secret:
            from controller.config import ensure_secrets  # generated on first use

            secret = ensure_secrets(s.secrets_path)["WEBHOOK_SECRET"]
        try:
            self.webhooks = Webhooks(
                WebhookConfig(after_call=s.webhook_after_call, in_call=s.webhook_in_call,
                              secret=secret, timeout=s.webhook_timeout,
                              retries=s.webhook_retries),
                self.metrics)
        except WebhookSecretError as e:  # blank: set on purpose, never replaced silently
            raise StartupError(f"webhooks are configured but {e}") from None
        self.admin_api: AdminApi | None = None
        """The admin API, handed in by the composition root (controller.tools.app)."""
        self.admin: AdminApi | None = None
        """The admin API while it runs."""
        ctl.observers.append(self.metrics.observe)
        ctl.observers.append(self.webhooks.on_call_ended)
        ctl.live_observers.append(self.webhooks.on_answered)

    def _ari_up(self) -> dict[tuple[str, ...], float]:
        default = self.ctl.settings.node_name
        return {(str(getattr(n, "name", None) or default),): float(bool(n.stream.connected))
                for n in ari_nodes(self.ctl, held_only=False)}

    async def _probe(self) -> None:
        """For the gauges read at scrape time: does Redis answer, which Asterisk answers ARI
        (``build_info``'s ``asterisk``)."""
        rounds = 0
        while True:
            try:
                async with asyncio.timeout(PROBE_S):
                    self.redis_ok = await self.ctl.store.ping()
            except TimeoutError:
                self.redis_ok = False
            if not self._asterisk or rounds % 12 == 0:  # until known, then once a minute
                try:
                    async with asyncio.timeout(PROBE_S):
                        info = await self.ctl.ari.asterisk_info()
                    version = str(((info or {}).get("system") or {}).get("version") or "")
                except Exception:  # not answering now: keep the last version seen
                    version = self._asterisk
                if version and version != self._asterisk:
                    self._asterisk = version
                    self.metrics.set_build_info(asterisk=version)
            rounds += 1
            await asyncio.sleep(PROBE_S)

    async def start(self, *, admin: bool | None = None) -> None:
        """Start the loop-lag sampler, the gauges' probe, webhooks and (when enabled) the
        admin API. ``admin`` None: ``settings.admin == "on"``."""
        self.loop_lag.start()
        if self._probe_task is None:
            self._probe_task = asyncio.create_task(self._probe())
        self.webhooks.start()
        if self.webhooks.config.enabled:
            log.info("webhooks: %d after-call, %d in-call URL(s)",
                     len(self.webhooks.config.after_call), len(self.webhooks.config.in_call))
        if admin is None:
            admin = self.ctl.settings.admin == "on"
        if admin and self.admin is None:
            if self.admin_api is None:
                raise StartupError("the admin API is on (CALLCTL_ADMIN=on) but this process "
                                   "has none: build the controller with "
                                   "controller.tools.app.build_controller")
            self.admin = self.admin_api
            await self.admin.start()

    async def stop(self) -> None:
        if self.admin is not None:
            await self.admin.stop()
            self.admin = None
        await self.webhooks.stop()
        await self.loop_lag.stop()
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
            self._probe_task = None

    def status(self) -> dict[str, Any]:
        return {"webhooks": {"enabled": self.webhooks.config.enabled,
                             "queued": self.webhooks.queue.qsize(),
                             "last_errors": dict(self.webhooks.last_error)},
                "admin": None if self.admin is None else self.admin.url}
