"""``time`` node: ``holiday`` on a listed date, ``open`` inside ``hours``, else ``closed``.

The clock is ``ctx.now()`` (injected); it is read in ``node.timezone`` (default
``settings.timezone``). A naive datetime from the clock is taken as UTC. Holidays are whole
local days and win over ``hours``.
"""

from __future__ import annotations

import datetime as dt
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from controller.core.flows import editor_parts as ep
from controller.core.flows.directory import Window
from controller.core.flows.settings import Settings
from controller.core.model import CallContext, Continue, NodeGen
from controller.core.nodes.base import NodeBase, NodeRef

__all__ = ["MODEL", "SCHEMA", "Holiday", "TimeNode", "decide", "run"]


class Holiday(BaseModel):
    """One day (``date``) or an inclusive range (``from``/``to``), in the node's time zone."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_alias=True, validate_by_name=True,
        serialize_by_alias=True,
    )

    date: dt.date | None = None
    from_: dt.date | None = Field(None, alias="from")
    to: dt.date | None = None
    name: str = ""

    @model_validator(mode="after")
    def _shape(self) -> Holiday:
        if self.date is not None:
            if self.from_ is not None or self.to is not None:
                raise ValueError("give `date`, or `from` and `to`, not both")
        elif self.from_ is None or self.to is None:
            raise ValueError("a holiday needs `date`, or `from` and `to`")
        elif self.to < self.from_:
            raise ValueError(f"`to` ({self.to}) is before `from` ({self.from_})")
        return self

    def contains(self, day: dt.date) -> bool:
        if self.date is not None:
            return day == self.date
        assert self.from_ is not None and self.to is not None
        return self.from_ <= day <= self.to


class TimeNode(NodeBase):
    """Branch on the time: ``holiday`` (a listed date), ``open`` (inside ``hours``), ``closed``."""

    type: Literal["time"] = "time"
    timezone: str | None = Field(None, description="IANA zone; default settings.timezone")
    hours: list[Window] = Field(min_length=1, description="when the line is open")
    holidays: list[Holiday] = Field(default_factory=list)
    open: NodeRef
    closed: NodeRef
    holiday: NodeRef | None = Field(None, description="default: `closed`")
    BRANCHES: ClassVar[tuple[str, ...]] = ("open", "closed", "holiday")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None:
            Settings(timezone=v)  # the same check and message as settings.timezone
        return v

    def branch(self, key: str) -> str | None:
        if key == "holiday":
            return self.holiday or self.closed
        return super().branch(key)


MODEL = TimeNode


def decide(node: TimeNode, now: datetime, default_tz: str = "UTC") -> tuple[str, datetime]:
    """``("open" | "closed" | "holiday", local time)``. Pure."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    local = now.astimezone(ZoneInfo(node.timezone or default_tz))
    if any(h.contains(local.date()) for h in node.holidays):
        return "holiday", local
    if any(w.contains(local) for w in node.hours):
        return "open", local
    return "closed", local


def run(node: TimeNode, ctx: CallContext) -> NodeGen:
    yield from ()
    settings = getattr(ctx.flowset, "settings", None)
    result, local = decide(node, ctx.now(), getattr(settings, "timezone", None) or "UTC")
    ctx.log("time", node=node.id, result=result, local=local.isoformat(timespec="minutes"))
    return Continue(result)


# ---------------------------------------------------------------------------------------------
# The editor JSON Schema (`callctl schema`, controller.core.flows.editor_schema): what the
# models alone would not say.

_TIME_NODE_FIELDS: dict[str, Any] = {
    **ep.NODE_COMMON,
    "timezone": ep.nullable(ep.string(ep.TIMEZONE_PATTERN, "IANA time zone (default: "
                                      "settings.timezone; e.g. America/New_York)")),
    "hours": "When the line is open: a list of windows (e.g. {days: mon-fri, start: "
             "\"09:00\", end: \"18:00\"}).",
    "holidays": "Dates when the line is closed (they win over hours).",
    "open": ep.node_ref("Where to go inside hours"),
    "closed": ep.node_ref("Where to go outside hours"),
    "holiday": ep.nullable(ep.node_ref("Where to go on a holiday (default: closed)")),
}

_HOLIDAY_FIELDS: dict[str, Any] = {
    "date": "One day, YYYY-MM-DD (e.g. 2025-12-25).",
    "from": "First day of a range, YYYY-MM-DD.",
    "to": "Last day of a range (inclusive), YYYY-MM-DD.",
    "name": "What the day is (e.g. Christmas).",
}

SCHEMA: dict[str, ep.Definition] = {
    "TimeNode": ep.Definition(
        "Branch on the time: holiday (a listed date), open (inside hours), closed.",
        _TIME_NODE_FIELDS,
    ),
    "Holiday": ep.Definition(
        "One day (date) or an inclusive range (from and to), in the node's time zone.",
        _HOLIDAY_FIELDS,
        rules={"anyOf": [
            {"allOf": [ep.present("date"), ep.absent("from", "to")]},
            {"allOf": [ep.present("from"), ep.present("to"), ep.absent("date")]},
        ]},
    ),
}
