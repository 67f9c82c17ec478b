"""``/users``: state and runtime overrides; ``/audit``."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from controller.admin.http import int_query, read_body, respond_json, who
from controller.admin.routing import P_LIMIT, P_USER, Api, Body, Param, Route
from controller.ops import audit, users


class OptOutBody(Body):
    opted_out: bool | None = Field(
        description="true: never rung; false: rung again; null: the published value applies")


class AvailabilityBody(Body):
    mode: Literal["set", "always", "reset"] = Field(
        "set", description="set: these windows; always: any time; reset: the published "
                           "windows apply")
    windows: list[Any] = Field(  # checked by ops.users.set_availability (it names the field)
        default_factory=list, max_length=50,
        description="'mon-fri 09:00-17:00' strings or {days, start, end} objects",
        json_schema_extra={"items": {"anyOf": [
            {"type": "string", "examples": ["mon-fri 09:00-17:00"]},
            {"type": "object", "required": ["days", "start", "end"],
             "properties": {"days": {"type": "string", "examples": ["mon-fri"]},
                            "start": {"type": "string", "examples": ["09:00"]},
                            "end": {"type": "string", "examples": ["17:00"]}}}]}})
    timezone: str | None = Field(None, description="IANA zone (default: the user's)")


class AlternateBody(Body):
    alternate: str | None = Field(
        description="+E.164 number, user id / 'user:<id>' or 'sip:<endpoint>'; null: no "
                    "alternate (even if the flow has one)")
    reset: bool = Field(False, description="true: the published alternate applies again")


ROUTES: tuple[Route, ...] = (
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
)


async def h_users(api: Api, request: web.Request) -> web.Response:
    return respond_json(await users.list_users(api.ops))


async def h_user(api: Api, request: web.Request) -> web.Response:
    return respond_json(await users.get_user(api.ops, request.match_info["user"]))


async def h_opt_out(api: Api, request: web.Request) -> web.Response:
    b: OptOutBody = await read_body(request, OptOutBody)
    return respond_json(await users.set_opt_out(api.ops, request.match_info["user"],
                                                b.opted_out, by=who(request)))


async def h_availability(api: Api, request: web.Request) -> web.Response:
    b: AvailabilityBody = await read_body(request, AvailabilityBody)
    return respond_json(await users.set_availability(
        api.ops, request.match_info["user"], b.windows, by=who(request), tz=b.timezone,
        mode=b.mode))


async def h_alternate(api: Api, request: web.Request) -> web.Response:
    b: AlternateBody = await read_body(request, AlternateBody)
    return respond_json(await users.set_alternate(api.ops, request.match_info["user"],
                                                  b.alternate, by=who(request), reset=b.reset))


async def h_audit(api: Api, request: web.Request) -> web.Response:
    return respond_json(await audit.list_audit(api.ops,
                                               limit=int_query(request, "limit", 50) or 50,
                                               target=request.query.get("target") or None))
