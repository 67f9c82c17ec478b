"""What a route module declares: its routes (method, path, handler, body, parameters)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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
