"""What a route module declares and what its handlers run with.

A route module (``routes/<area>.py``, one per OpenAPI tag) holds its :data:`ROUTES` (method,
path, handler name, summary, body model, parameters: what ``/openapi.json`` says of it), the
body models, and one ``h_<handler>(api, request)`` coroutine per route."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from controller.admin.flowworker import FlowWorker
from controller.ops.context import Context

if TYPE_CHECKING:
    from controller.shell.runtime import Controller


class Body(BaseModel):
    """A request body: strict (``"yes"`` is not a boolean), unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


@dataclass(frozen=True)
class Param:
    """A path or query parameter."""

    name: str
    type: str = "string"
    description: str = ""
    where: Literal["path", "query"] = "query"


@dataclass(frozen=True)
class Route:
    """One route: ``h_<handler>`` in its module answers it; ``handler`` is its OpenAPI
    operationId, ``tag`` its area, ``statuses`` the error statuses it documents beyond
    400/401/503."""

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


@dataclass(frozen=True)
class Api:
    """What a handler runs with: the controller it is inside, the operations' context over its
    store, the worker process flow files are loaded in, and the route table."""

    ctl: Controller
    ops: Context
    flow_worker: FlowWorker
    routes: tuple[Route, ...] = ()
    """Every route (``/openapi.json`` describes them)."""


Handler = Any
"""``async def h_<name>(api: Api, request: web.Request) -> web.Response``."""
