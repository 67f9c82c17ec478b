"""The admin HTTP API (aiohttp), inside the controller process.

Bound to ``CALLCTL_ADMIN_BIND:CALLCTL_ADMIN_PORT`` (default ``127.0.0.1:8090``). Every route
but ``/health``, ``/openapi.json`` and the diagram page's HTML shell needs
``Authorization: Bearer <admin token>`` (``ADMIN_TOKEN`` in ``<run dir>/secrets.env``,
generated on first start, or ``CALLCTL_ADMIN_TOKEN``); the token is compared in constant
time, and a request without it gets 401 before anything is read or changed.

The routes are the CLI's operations (:mod:`controller.ops`) as JSON: ``routes/<area>.py`` holds
an area's route table, bodies and handlers (:mod:`controller.admin.routes`), from which
``/openapi.json`` is generated too (:mod:`controller.admin.openapi`). Errors are
``{"error": message, "field": path-of-the-bad-input, "status": code}``: 400 malformed or
invalid input, 401 no/bad token, 404 unknown thing, 409 nothing published, 413 too big,
422 flow files with errors, 503 Redis/ARI unavailable (or the flow worker busy).

Input is strict: bodies are pydantic models in strict mode (``"yes"`` is not a boolean,
``"900"`` not a number; unknown fields refused), query parameters are the route's own
(others refused), and names in paths are checked before use (400 when malformed, 404 when
unknown): :mod:`controller.admin.http`, :mod:`controller.admin.middleware`. Flow files are
loaded in a worker process (:mod:`controller.admin.flowworker`), off the event loop, under
the loader's limits (:mod:`controller.core.flows.loader`).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from controller.admin.flowworker import FlowWorker
from controller.admin.http import MAX_BODY
from controller.admin.middleware import auth, errors, strict_query
from controller.admin.routes import HANDLERS, ROUTES
from controller.admin.routing import Api
from controller.ops.context import Context

if TYPE_CHECKING:
    from controller.shell.runtime import Controller

log = logging.getLogger("callctl.admin")


class AdminServer:
    """The admin API of one controller: made by the process's composition root
    (:mod:`controller.tools.app`) and started/stopped with the controller's services."""

    def __init__(self, ctl: Controller, *, host: str | None = None, port: int | None = None,
                 token: str | None = None) -> None:
        self.ctl = ctl
        s = ctl.settings
        self.host = host or s.admin_bind
        self.port = s.admin_port if port is None else port
        self.token = token if token is not None else s.admin_token
        self.api = Api(ctl, Context(ctl.store, s, controller=ctl), FlowWorker(), ROUTES)
        self._runner: web.AppRunner | None = None
        self.bound: tuple[str, int] | None = None

    @property
    def url(self) -> str:
        host, port = self.bound or (self.host, self.port)
        return f"http://{host if ':' not in host else f'[{host}]'}:{port}"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[errors, auth(self.token), strict_query],
                              client_max_size=MAX_BODY)
        for r in ROUTES:
            app.router.add_route(r.method, r.path, functools.partial(HANDLERS[r.handler],
                                                                     self.api))
        return app

    async def start(self) -> None:
        if not self.token:
            from controller.config import ensure_secrets

            self.token = ensure_secrets(self.ctl.settings.secrets_path)["ADMIN_TOKEN"]
            log.info("admin token generated into %s", self.ctl.settings.secrets_path)
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            from controller.config import StartupError

            raise StartupError(
                f"admin API cannot listen on {self.host}:{self.port} ({e.strerror or e}): set "
                "CALLCTL_ADMIN_PORT (or CALLCTL_ADMIN=off)") from None
        self._runner = runner
        server = site._server
        socks = getattr(server, "sockets", None) or []
        if socks:
            addr = socks[0].getsockname()
            self.bound = (str(addr[0]), int(addr[1]))
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = self.host == "localhost"
        (log.info if loopback else log.warning)(
            "admin API on %s%s", self.url,
            "" if loopback else " (not loopback: keep the token secret, put TLS in front)")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.api.flow_worker.close()
