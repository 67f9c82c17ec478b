"""The admin HTTP API (aiohttp), inside the controller process.

Bound to ``CALLCTL_ADMIN_BIND:CALLCTL_ADMIN_PORT`` (default ``127.0.0.1:8090``). Every route
but ``/health``, ``/openapi.json`` and the diagram page's HTML shell needs
``Authorization: Bearer <admin token>`` (``ADMIN_TOKEN`` in ``<run dir>/secrets.env``,
generated on first start, or ``CALLCTL_ADMIN_TOKEN``); the token is compared in constant
time, and a request without it gets 401 before anything is read or changed.

The routes are the CLI's operations (:class:`controller.ops.ops.Ops`) as JSON, described by the
table :data:`ROUTES`, from which ``/openapi.json`` is generated too. Errors are
``{"error": message, "field": path-of-the-bad-input, "status": code}``: 400 malformed or
invalid input, 401 no/bad token, 404 unknown thing, 409 nothing published, 413 too big,
422 flow files with errors, 503 Redis/ARI unavailable (or the flow worker busy).

Input is strict: bodies are pydantic models in strict mode (``"yes"`` is not a boolean,
``"900"`` not a number; unknown fields refused), query parameters are the route's own
(others refused), and names in paths are checked before use (400 when malformed, 404 when
unknown). Flow files are loaded in a worker process (:mod:`controller.admin.flowworker`), off
the event loop, under the loader's limits (:mod:`controller.core.flows.loader`).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.adapters.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from controller.adapters.redis import flowstore as publish
from controller.admin import diagram
from controller.admin.flowworker import FlowWorker, WorkerBusy
from controller.core.flows import loader
from controller.core.flows.schema import FLOW_VAR
from controller.ops import audit, blocklist, departments, dryrun, failover, status, users
from controller.ops import calls as ops_calls
from controller.ops.calls import records_csv
from controller.ops.context import Context
from controller.ops.errors import OpsError
from controller.ops.flows import live_flows
from controller.ops.parse import parse_since
from controller.shell.services import ari_nodes

if TYPE_CHECKING:
    from controller.shell.runtime import Controller

log = logging.getLogger("callctl.admin")

DIAGRAM_HTML = Path(__file__).with_name("diagram.html")
MAX_BODY = 1 << 20  # 1 MiB: flow files included
HEALTH_TIMEOUT = 2.0


# ---------------------------------------------------------------------------- request bodies

class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class OptOutBody(_Body):
    opted_out: bool | None = Field(
        description="true: never rung; false: rung again; null: the published value applies")


class AvailabilityBody(_Body):
    mode: Literal["set", "always", "reset"] = Field(
        "set", description="set: these windows; always: any time; reset: the published "
                           "windows apply")
    windows: list[Any] = Field(  # checked by Ops.set_availability (it names the field)
        default_factory=list, max_length=50,
        description="'mon-fri 09:00-17:00' strings or {days, start, end} objects",
        json_schema_extra={"items": {"anyOf": [
            {"type": "string", "examples": ["mon-fri 09:00-17:00"]},
            {"type": "object", "required": ["days", "start", "end"],
             "properties": {"days": {"type": "string", "examples": ["mon-fri"]},
                            "start": {"type": "string", "examples": ["09:00"]},
                            "end": {"type": "string", "examples": ["17:00"]}}}]}})
    timezone: str | None = Field(None, description="IANA zone (default: the user's)")


class AlternateBody(_Body):
    alternate: str | None = Field(
        description="+E.164 number, user id / 'user:<id>' or 'sip:<endpoint>'; null: no "
                    "alternate (even if the flow has one)")
    reset: bool = Field(False, description="true: the published alternate applies again")


class BlockBody(_Body):
    number: str = Field(description="a number, a 'prefix*' or 'withheld'", max_length=64)
    reason: str = Field("", max_length=200)


class FailoverTestBody(_Body):
    line: str = Field(description="a published DID or department id", max_length=64)
    seconds: int = Field(900, ge=1, le=7 * 86400, description="auto-revert after (s)")


class SimulateBody(_Body):
    did: str = Field(max_length=32)
    from_: str = Field("", alias="from", max_length=32, description="the caller's number")
    at: str | None = Field(None, description="'2026-12-06 22:00' (flow time zone) or ISO")
    tz: str | None = Field(None, description="time zone of `at` (default: the flows')")
    digits: list[str] = Field(default_factory=list, max_length=50,
                              description="one entry per prompt that collects digits")
    answer: str | None = Field(None, description="a user/address that answers, or 'first'")
    flows: str | None = Field(None, max_length=MAX_BODY,
                              description="a draft flow file (YAML) to walk instead of the "
                                          "published flows")
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True,
                              populate_by_name=True)


class RollbackBody(_Body):
    version: int | None = Field(None, ge=1, description="default: the previous version")


class FlowFilesBody(_Body):
    files: dict[str, str] = Field(min_length=1, max_length=100,
                                  description="file name -> YAML text")


# ---------------------------------------------------------------------------- route table

@dataclass(frozen=True)
class Param:
    name: str
    type: str = "string"
    description: str = ""
    where: Literal["path", "query"] = "query"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: str
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    params: tuple[Param, ...] = ()
    public: bool = False
    yaml_body: bool = False
    produces: str = "application/json"
    statuses: tuple[int, ...] = field(default=())


P_USER = Param("user", description="user id", where="path")
P_LIMIT = Param("limit", "integer", "at most this many")

ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", "health", "Ready when ARI (REST and events) and Redis answer",
          "health", public=True, statuses=(503,)),
    Route("GET", "/metrics", "metrics", "Prometheus metrics", "health",
          produces="text/plain"),
    Route("GET", "/openapi.json", "openapi", "This document", "health", public=True),
    Route("GET", "/status", "status", "Controller, ARI, AMI, Redis, live calls", "status"),
    Route("GET", "/calls", "calls", "Recent calls, calls since a time, or live calls", "calls",
          params=(Param("live", "boolean", "live calls only"),
                  Param("since", description="15m, 2h, 7d, an ISO time or epoch seconds"),
                  P_LIMIT)),
    Route("GET", "/calls/export", "calls_export", "Call log export (CSV or JSON)", "calls",
          params=(Param("format", description="csv (default) or json"),
                  Param("since", description="15m, 2h, 7d, an ISO time or epoch seconds"),
                  P_LIMIT), produces="text/csv"),
    Route("GET", "/calls/{call_id}", "call", "One call: record, decision trace, events",
          "calls", params=(Param("call_id", where="path"),), statuses=(404,)),
    Route("GET", "/users", "users", "Users: flow values, overrides, state, counts", "users"),
    Route("GET", "/users/{user}", "user", "One user", "users", params=(P_USER,),
          statuses=(404,)),
    Route("PUT", "/users/{user}/opt-out", "opt_out", "Opt a user out of (or back into) calls",
          "users", body=OptOutBody, params=(P_USER,), statuses=(404,)),
    Route("PUT", "/users/{user}/availability", "availability", "Set availability windows",
          "users", body=AvailabilityBody, params=(P_USER,), statuses=(404,)),
    Route("PUT", "/users/{user}/alternate", "alternate", "Set or clear the alternate number",
          "users", body=AlternateBody, params=(P_USER,), statuses=(404,)),
    Route("GET", "/audit", "audit", "Audit log of user and blocklist changes", "users",
          params=(P_LIMIT, Param("target", description="a user id or blocklist pattern"))),
    Route("GET", "/departments", "departments", "Departments, members, answered/missed",
          "departments"),
    Route("GET", "/blocklist", "blocked", "Blocked numbers and prefixes", "blocklist"),
    Route("POST", "/blocklist", "block", "Block a number, prefix* or withheld callers",
          "blocklist", body=BlockBody),
    Route("DELETE", "/blocklist/{pattern}", "unblock", "Unblock (URL-encode '+' as %2B)",
          "blocklist", params=(Param("pattern", where="path"),), statuses=(404,)),
    Route("GET", "/failover", "failover_status", "Active failover tests and the test log",
          "failover", params=(P_LIMIT,)),
    Route("POST", "/failover/tests", "failover_start", "Start a failover test on a line",
          "failover", body=FailoverTestBody, statuses=(404,)),
    Route("DELETE", "/failover/tests/{line}", "failover_stop", "Stop a failover test",
          "failover", params=(Param("line", where="path"),), statuses=(404,)),
    Route("POST", "/simulate", "simulate", "Dry-run a call through the flows", "simulate",
          body=SimulateBody, statuses=(413, 422)),
    Route("GET", "/flows/versions", "versions", "Published flow versions", "flows"),
    Route("POST", "/flows/validate", "validate", "Validate flow files (nothing changes)",
          "flows", body=FlowFilesBody, yaml_body=True, statuses=(413, 422)),
    Route("POST", "/flows/publish", "publish", "Validate and publish flow files", "flows",
          body=FlowFilesBody, yaml_body=True, statuses=(413, 422)),
    Route("POST", "/flows/rollback", "rollback", "Make an earlier version live", "flows",
          body=RollbackBody, statuses=(404,)),
    Route("GET", "/flows/graph", "graph", "The published flows as graphs", "flows"),
    Route("GET", "/flows/live", "live", "Live calls and the node each is at", "flows"),
    Route("GET", "/flows/diagram", "diagram_page",
          "Flow diagram page (open with #token=<admin token>)", "flows", public=True,
          produces="text/html"),
)
PUBLIC_PATHS = frozenset(r.path for r in ROUTES if r.public)


# ---------------------------------------------------------------------------- helpers

def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """pydantic ``loc`` -> ``windows[0].start``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def error(status: int, message: str, fld: str | None = None,
          **extra: Any) -> web.Response:
    return web.json_response({"error": message, "field": fld, "status": status, **extra},
                             status=status)


class BadRequest(Exception):
    def __init__(self, status: int, message: str, fld: str | None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.extra = status, message, fld, extra


def token_ok(header: str, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    scheme, _, cred = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(cred.strip().encode(), token.encode())


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


def _int_query(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) < 1:
        raise BadRequest(400, f"{raw[:40]!r} is not a whole number from 1", name, value=raw[:80])
    return int(raw)


def _bool_query(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "").lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise BadRequest(400, f"{raw[:40]!r} is not a boolean (true/false)", name, value=raw[:80])


def check_query(request: web.Request, route: Route | None) -> None:
    """Only the route's own query parameters, each at most once (a typo is not ignored).
    Public routes (``/health``...) take any: probes add cache-busting parameters."""
    if route is not None and route.public:
        return
    known = {p.name for p in route.params if p.where == "query"} if route else set()
    for name in request.query:
        if name not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise BadRequest(400, f"unknown query parameter {name[:40]!r} (allowed: "
                             f"{allowed})", name[:80])
        if len(request.query.getall(name)) > 1:
            raise BadRequest(400, f"query parameter {name!r} given more than once", name)


def _shown(value: Any) -> Any:
    """A bad input value for the error body: JSON scalars as they are, the rest cut."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= 80 else value[:77] + "..."
    text = json.dumps(value, default=str)
    return value if len(text) <= 80 else text[:77] + "..."


def parse_body(raw: bytes, model: type[BaseModel]) -> Any:
    """A JSON object validated by ``model``, or BadRequest(400) naming the field (``(body)``
    when the JSON itself is malformed: the message gives line and column)."""
    if not raw.strip():
        raise BadRequest(400, "a JSON body is required", "(body)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(400, "the body is not UTF-8", "(body)") from None
    except json.JSONDecodeError as e:
        raise BadRequest(400, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}",
                         "(body)", line=e.lineno, column=e.colno) from None
    if not isinstance(data, dict):
        raise BadRequest(400, "the body must be a JSON object", "(body)")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errs: list[dict[str, Any]] = []
        for x in e.errors(include_url=False):
            err: dict[str, Any] = {"field": field_path(x["loc"]), "message": x["msg"]}
            if x["type"] != "missing":
                err["value"] = _shown(x.get("input"))
                err["message"] += f" (got {json.dumps(err['value'], default=str)})"
            errs.append(err)
        first = errs[0]
        raise BadRequest(400, f"{first['field']}: {first['message']}", first["field"],
                         errors=errs, **({"value": first["value"]} if "value" in first
                                         else {})) from None


# ---------------------------------------------------------------------------- the server

class AdminServer:
    def __init__(self, ctl: Controller, *, host: str | None = None, port: int | None = None,
                 token: str | None = None) -> None:
        self.ctl = ctl
        s = ctl.settings
        self.host = host or s.admin_bind
        self.port = s.admin_port if port is None else port
        self.token = token if token is not None else s.admin_token
        self.ops = Context(ctl.store, s, controller=ctl)
        self.flow_worker = FlowWorker()
        self._routes = {(r.method, r.path): r for r in ROUTES}
        self._runner: web.AppRunner | None = None
        self.bound: tuple[str, int] | None = None

    @property
    def url(self) -> str:
        host, port = self.bound or (self.host, self.port)
        return f"http://{host if ':' not in host else f'[{host}]'}:{port}"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._auth, self._query],
                              client_max_size=MAX_BODY)
        for r in ROUTES:
            app.router.add_route(r.method, r.path, getattr(self, "h_" + r.handler))
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
            from controller.shell.runtime import StartupError

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
        await self.flow_worker.close()

    # ------------------------------------------------------------------ middleware

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS and request.method in ("GET", "HEAD"):
            return await handler(request)
        if not token_ok(request.headers.get("Authorization", ""), self.token):
            resp = error(401, "missing or wrong bearer token (Authorization: Bearer <admin "
                         "token>, see ADMIN_TOKEN in the run directory's secrets.env)")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="callctl"'
            return resp
        return await handler(request)

    @web.middleware
    async def _query(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is not None:  # a route of ours (not a 404/405)
            method = "GET" if request.method == "HEAD" else request.method
            check_query(request, self._routes.get((method, resource.canonical)))
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        try:
            return await handler(request)
        except OpsError as e:
            return error(e.status, e.message, e.field)
        except BadRequest as e:
            return error(e.status, e.message, e.field, **e.extra)
        except web.HTTPRequestEntityTooLarge:
            return error(413, f"body larger than {MAX_BODY} bytes", "(body)")
        except web.HTTPException as e:
            if e.status >= 400:
                return error(e.status, e.reason)
            raise
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("admin API: %s %s failed", request.method, request.path)
            return error(500, "internal error (see the controller log)")

    # ------------------------------------------------------------------ bodies

    async def body(self, request: web.Request, model: type[BaseModel]) -> Any:
        return parse_body(await request.read(), model)

    def who(self, request: web.Request) -> str:
        name = request.headers.get("X-Callctl-User", "").strip()[:32]
        return f"{name or 'admin'}@api"

    # ------------------------------------------------------------------ health & metrics

    async def h_health(self, request: web.Request) -> web.Response:
        ctl = self.ctl

        async def ari() -> dict[str, Any]:
            problems = []
            for node in ari_nodes(ctl):
                name = getattr(node, "name", None) or "ari"
                try:
                    async with asyncio.timeout(HEALTH_TIMEOUT):
                        await node.ari.asterisk_info()
                except Exception as e:
                    problems.append(f"{name}: {type(e).__name__}")
                    continue
                if getattr(node, "held", True) and not node.stream.connected:
                    problems.append(f"{name}: event websocket not connected")
            return {"ok": False, "error": "; ".join(problems)} if problems else {"ok": True}

        async def redis() -> dict[str, Any]:
            try:
                async with asyncio.timeout(HEALTH_TIMEOUT):
                    ok = await ctl.store.ping()
            except TimeoutError:
                ok = False
            return {"ok": True} if ok else {"ok": False, "error": "no answer"}

        def replaced() -> dict[str, Any]:
            # Another websocket took our Stasis app over lately: calls were (or are) not
            # heard; the stream takes it back, but an operator must find the other listener.
            taken = []
            for node in ari_nodes(ctl):
                stream = node.stream
                recently = getattr(stream, "replaced_recently", None)
                if recently is not None and recently():
                    ago = time.monotonic() - (stream.replaced_at or 0.0)
                    taken.append(f"{getattr(node, 'name', None) or 'ari'}: Stasis app "
                                 f"{ctl.settings.app} taken over by another websocket "
                                 f"{stream.replaced} time(s), last {ago:.0f} s ago")
            return {"ok": False, "error": "; ".join(taken)} if taken else {"ok": True}

        a, r = await asyncio.gather(ari(), redis())
        checks = {"ari": a, "redis": r, "ari_replaced": replaced()}
        failing = [n for n, c in checks.items() if not c["ok"]]
        return _json({"ready": not failing, "failing": failing,
                      "checks": checks}, 503 if failing else 200)

    async def h_metrics(self, request: web.Request) -> web.Response:
        text = self.ctl.services.metrics.render()
        return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def h_openapi(self, request: web.Request) -> web.Response:
        from controller.admin.openapi import document

        return _json(document())

    # ------------------------------------------------------------------ ops

    async def h_status(self, request: web.Request) -> web.Response:
        data = await status.get_status(self.ops)
        data["services"] = self.ctl.services.status()
        return _json(data)

    def _since(self, request: web.Request) -> float | None:
        raw = request.query.get("since")
        return None if not raw else parse_since(raw)

    async def h_calls(self, request: web.Request) -> web.Response:
        return _json(await ops_calls.list_calls(self.ops, live=_bool_query(request, "live"),
                                          since=self._since(request),
                                          limit=_int_query(request, "limit", None)))

    async def h_calls_export(self, request: web.Request) -> web.Response:
        fmt = request.query.get("format", "csv")
        if fmt not in ("csv", "json"):
            raise BadRequest(400, f"{fmt!r}: use csv or json", "format")
        since = self._since(request)
        rows = await ops_calls.list_calls(self.ops, since=since if since is not None else 0.0,
                                    limit=_int_query(request, "limit", None))
        if fmt == "json":
            return _json(rows)
        return web.Response(text=records_csv(rows), content_type="text/csv",
                            headers={"Content-Disposition": 'attachment; filename="calls.csv"'})

    async def h_call(self, request: web.Request) -> web.Response:
        return _json(await ops_calls.get_call(self.ops, request.match_info["call_id"]))

    async def h_users(self, request: web.Request) -> web.Response:
        return _json(await users.list_users(self.ops))

    async def h_user(self, request: web.Request) -> web.Response:
        return _json(await users.get_user(self.ops, request.match_info["user"]))

    async def h_opt_out(self, request: web.Request) -> web.Response:
        b: OptOutBody = await self.body(request, OptOutBody)
        return _json(await users.set_opt_out(self.ops, request.match_info["user"], b.opted_out,
                                                by=self.who(request)))

    async def h_availability(self, request: web.Request) -> web.Response:
        b: AvailabilityBody = await self.body(request, AvailabilityBody)
        return _json(await users.set_availability(
            self.ops, request.match_info["user"], b.windows, by=self.who(request), tz=b.timezone,
            mode=b.mode))

    async def h_alternate(self, request: web.Request) -> web.Response:
        b: AlternateBody = await self.body(request, AlternateBody)
        return _json(await users.set_alternate(self.ops, request.match_info["user"], b.alternate,
                                                  by=self.who(request), reset=b.reset))

    async def h_audit(self, request: web.Request) -> web.Response:
        return _json(await audit.list_audit(self.ops, limit=_int_query(request, "limit", 50) or 50,
                                          target=request.query.get("target") or None))

    async def h_departments(self, request: web.Request) -> web.Response:
        return _json(await departments.list_departments(self.ops))

    async def h_blocked(self, request: web.Request) -> web.Response:
        return _json(await blocklist.list_blocked(self.ops))

    async def h_block(self, request: web.Request) -> web.Response:
        b: BlockBody = await self.body(request, BlockBody)
        return _json(await blocklist.block(self.ops, b.number, reason=b.reason,
                                           by=self.who(request)))

    async def h_unblock(self, request: web.Request) -> web.Response:
        try:
            return _json(await blocklist.unblock(self.ops, request.match_info["pattern"],
                                                by=self.who(request)))
        except OpsError as e:  # the CLI's argument is the number; here the path's pattern
            if e.field == "number":
                e.field = "pattern"
            raise

    async def h_failover_status(self, request: web.Request) -> web.Response:
        return _json(await failover.test_status(self.ops, _int_query(request, "limit", 20) or 20))

    async def h_failover_start(self, request: web.Request) -> web.Response:
        b: FailoverTestBody = await self.body(request, FailoverTestBody)
        return _json(await failover.start_test(self.ops, b.line, b.seconds, by=self.who(request)))

    async def h_failover_stop(self, request: web.Request) -> web.Response:
        return _json(await failover.stop_test(self.ops, request.match_info["line"],
                                                  by=self.who(request)))

    async def h_simulate(self, request: web.Request) -> web.Response:
        b: SimulateBody = await self.body(request, SimulateBody)
        draft = None
        if b.flows is not None:
            res = await self.load_flows({"flows": b.flows}, "flows")
            if res.errors or res.flowset is None:
                raise BadRequest(422, f"the draft flows have {len(res.errors)} error(s)",
                                 _problem_field(res.errors[0], "flows") if res.errors
                                 else "flows", problems=_problems(res))
            draft = res.flowset
        return _json(await dryrun.simulate(self.ops, did=b.did, caller=b.from_, at=b.at, tz=b.tz,
                                             digits=b.digits, flowset=draft, answer=b.answer))

    # ------------------------------------------------------------------ flows

    async def load_flows(self, texts: dict[str, str], fld: str) -> loader.LoadResult:
        """Load flow files in the worker process. Input the loader refuses (a limit, the
        encoding, a control character) is 413/400 naming ``fld`` and the position."""
        try:
            res = await self.flow_worker.load(texts)
        except WorkerBusy as e:
            raise OpsError(503, str(e), fld) from None
        if res.refused:
            raise _refusal(res.refused[0], fld, res)
        return res

    async def _flow_files(self, request: web.Request) -> loader.LoadResult:
        ctype = request.content_type
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml",
                     "text/plain"):
            raw = await request.read()
            try:
                text = loader.decode(raw, "flows.yaml")
            except loader.FlowInputError as e:
                raise _refusal(e.problem(), "(body)") from None
            if not text.strip():
                raise BadRequest(400, "an empty flow file", "(body)")
            return await self.load_flows({"flows.yaml": text}, "(body)")
        b: FlowFilesBody = await self.body(request, FlowFilesBody)
        for name in b.files:
            if (not name or len(name) > 128 or "/" in name or "\\" in name
                    or name.startswith(".") or not name.isprintable()):
                raise BadRequest(400, f"{name[:80]!r} is not a plain file name",
                                 f"files.{name[:80]}")
        return await self.load_flows(dict(b.files), "files")

    async def h_validate(self, request: web.Request) -> web.Response:
        res = await self._flow_files(request)
        return _json(_validation(res), 200 if not res.errors else 422)

    async def h_publish(self, request: web.Request) -> web.Response:
        res = await self._flow_files(request)
        if res.errors:
            body = _validation(res)
            body.update({"error": f"not published: {len(res.errors)} error(s)",
                         "field": _problem_field(res.errors[0]), "status": 422})
            return _json(body, 422)
        from redis.exceptions import RedisError

        try:
            done = await publish.publish_flows(self.ctl.store.redis, res,
                                               prefix=self.ctl.settings.redis_prefix)
        except (RedisError, OSError) as e:
            raise OpsError(503, f"redis unavailable: {type(e).__name__}") from None
        log.info("admin API: %s published flow version %d (%s)", self.who(request),
                 done.version, done.status)  # unchanged: the live version has this content
        return _json({**_validation(res), "published": done.version, "status": done.status})

    async def h_rollback(self, request: web.Request) -> web.Response:
        b: RollbackBody = await self.body(request, RollbackBody)
        from redis.exceptions import RedisError

        try:
            live = await publish.rollback(self.ctl.store.redis, b.version,
                                          prefix=self.ctl.settings.redis_prefix)
        except publish.RollbackError as e:
            raise OpsError(404, str(e), "version") from None
        except (RedisError, OSError) as e:
            raise OpsError(503, f"redis unavailable: {type(e).__name__}") from None
        log.info("admin API: %s rolled back to flow version %d", self.who(request), live)
        return _json({"live": live})

    async def h_versions(self, request: web.Request) -> web.Response:
        from redis.exceptions import RedisError

        try:
            rows = await publish.list_versions(self.ctl.store.redis,
                                               prefix=self.ctl.settings.redis_prefix)
        except (RedisError, OSError) as e:
            raise OpsError(503, f"redis unavailable: {type(e).__name__}") from None
        return _json([{"version": v.version, "published_at": v.published_at,
                       "files": list(v.files), "flows": v.flows, "dids": v.dids,
                       "live": v.live} for v in rows])

    # ------------------------------------------------------------------ diagram

    async def h_graph(self, request: web.Request) -> web.Response:
        live = await live_flows(self.ops)
        return _json(diagram.flow_graphs(live[1] if live else None,
                                         live[0] if live else None))

    async def h_live(self, request: web.Request) -> web.Response:
        """This controller's calls with the node each is at, plus the other controllers'
        live calls from Redis (their node is known once bridged: the saved ``path``)."""
        live = self.ctl.flows.current
        calls = []
        for call in list(self.ctl.calls.values()):
            ctx = call.ctx
            calls.append({"call_id": call.id, "did": ctx.did, "caller": ctx.caller,
                          "flow": ctx.vars.get(FLOW_VAR), "node": ctx.path[-1] if ctx.path
                          else None, "started": call.started, "flow_version": call.version,
                          "answered_by": ctx.answered_by, "here": True})
        mine = {c["call_id"] for c in calls}
        try:
            rows = await self.ctl.store.live_calls()
        except Exception:
            rows = []
        for r in rows:
            if r.get("id") in mine:
                continue
            try:
                path = json.loads(r.get("path") or "[]")
            except ValueError:
                path = []
            flow = live[1].flow_for_did(r.get("did", "")) if live else None
            calls.append({"call_id": r.get("id"), "did": r.get("did"),
                          "caller": r.get("caller"), "flow": flow.id if flow else None,
                          "node": path[-1] if path else None, "started": r.get("started"),
                          "flow_version": r.get("flow_version"),
                          "answered_by": r.get("answered_by") or None, "here": False})
        return _json({"version": live[0] if live else None, "calls": calls,
                      "positions": diagram.live_positions(calls)})

    async def h_diagram_page(self, request: web.Request) -> web.Response:
        return web.Response(body=DIAGRAM_HTML.read_bytes(), content_type="text/html",
                            charset="utf-8",
                            headers={"Cache-Control": "no-store",
                                     "Content-Security-Policy":
                                         "default-src 'none'; script-src 'unsafe-inline'; "
                                         "style-src 'unsafe-inline'; connect-src 'self'; "
                                         "img-src 'self' data:",
                                     "Referrer-Policy": "no-referrer"})


def _refusal(p: loader.Problem, fld: str, res: loader.LoadResult | None = None) -> BadRequest:
    """Refused flow input: 413 for a size limit, else 400; ``fld`` names the body part
    (``(body)``, ``files.<name>``, ``flows``), the message its position."""
    status = 413 if p.code in loader.SIZE_CODES else 400
    where = f"files.{p.file}" if fld == "files" else fld
    return BadRequest(status, str(p), where, file=p.file, line=p.line, column=p.col,
                      code=p.code, problems=_problems(res) if res else [_problem(p)])


def _problem_field(p: loader.Problem, root: str = "") -> str:
    where = f"{p.file}:{p.line}:{p.col}"
    path = p.path or "(top)"
    return f"{root + ': ' if root else ''}{path} ({where})"


def _problem(p: loader.Problem) -> dict[str, Any]:
    return {"file": p.file, "line": p.line, "column": p.col, "field": p.path or "(top)",
            "message": p.message, "severity": p.severity, "code": p.code or None,
            "value": None if p.value is loader.MISSING else repr(p.value)[:200]}


def _problems(res: loader.LoadResult) -> list[dict[str, Any]]:
    return [_problem(p) for p in res.problems]


def _validation(res: loader.LoadResult) -> dict[str, Any]:
    fs = res.flowset
    return {"ok": not res.errors, "errors": len(res.errors), "warnings": len(res.warnings),
            "problems": _problems(res),
            "summary": None if fs is None else {
                "flows": len(fs.flows), "dids": len(fs.did_map), "users": len(fs.users),
                "departments": len(fs.departments)}}
