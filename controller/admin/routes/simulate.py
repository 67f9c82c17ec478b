"""``/simulate``: a dry-run call."""

from __future__ import annotations

from aiohttp import web
from pydantic import ConfigDict, Field

from controller.admin.flowinput import load_flows, problem_field, problems
from controller.admin.http import MAX_BODY, BadRequest, read_body, respond_json
from controller.admin.routing import Api, Body, Route
from controller.ops import dryrun


class SimulateBody(Body):
    did: str = Field(max_length=32)
    from_: str = Field("", alias="from", max_length=32, description="the caller's number")
    at: str | None = Field(None, description="'2026-12-06 22:00' (flow time zone) or ISO")
    tz: str | None = Field(None, description="time zone of `at` (default: the flows')")
    digits: list[str] = Field(default_factory=list, max_length=50,
                              description="one entry per prompt that collects digits")
    answer: str | None = Field(None, max_length=64,
                               description="a user/address that answers, or 'first'")
    busy: list[str] = Field(default_factory=list, max_length=50,
                            description="users/addresses whose phones answer busy (486)")
    flows: str | None = Field(None, max_length=MAX_BODY,
                              description="a draft flow file (YAML) to walk instead of the "
                                          "published flows")
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True,
                              populate_by_name=True)


ROUTES: tuple[Route, ...] = (
    Route("POST", "/simulate", "simulate", "Dry-run a call through the flows", "simulate",
          body=SimulateBody, statuses=(413, 422)),
)


async def h_simulate(api: Api, request: web.Request) -> web.Response:
    b: SimulateBody = await read_body(request, SimulateBody)
    draft = None
    if b.flows is not None:
        res = await load_flows(api.flow_worker, {"flows": b.flows}, "flows")
        if res.errors or res.flowset is None:
            raise BadRequest(422, f"the draft flows have {len(res.errors)} error(s)",
                             problem_field(res.errors[0], "flows") if res.errors
                             else "flows", problems=problems(res))
        draft = res.flowset
    return respond_json(await dryrun.simulate(api.ops, did=b.did, caller=b.from_, at=b.at,
                                              tz=b.tz, digits=b.digits, flowset=draft,
                                              answer=b.answer, busy=b.busy))
