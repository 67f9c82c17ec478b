"""The admin API's requests and responses: strict bodies and query parameters (errors naming
the field), who is asking, JSON out."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from controller.ops.parse import parse_since

MAX_BODY = 1 << 20  # 1 MiB: flow files included


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
    """The error body: ``{"error", "field", "status", ...extra}``."""
    return web.json_response({"error": message, "field": fld, "status": status, **extra},
                             status=status)


class BadRequest(Exception):
    """A request the API refuses (400, 413, 422): the error middleware answers with it."""

    def __init__(self, status: int, message: str, fld: str | None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.extra = status, message, fld, extra


def respond_json(data: Any, status: int = 200) -> web.Response:
    """``data`` as JSON (anything JSON does not know as its ``str``)."""
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


def int_query(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) < 1:
        raise BadRequest(400, f"{raw[:40]!r} is not a whole number from 1", name, value=raw[:80])
    return int(raw)


def bool_query(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "").lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise BadRequest(400, f"{raw[:40]!r} is not a boolean (true/false)", name, value=raw[:80])


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


async def read_body(request: web.Request, model: type[BaseModel]) -> Any:
    """The request's JSON body validated by ``model`` (see :func:`parse_body`)."""
    return parse_body(await request.read(), model)


def who(request: web.Request) -> str:
    """Who a change is audited as: ``<X-Callctl-User or admin>@api``."""
    name = request.headers.get("X-Callctl-User", "").strip()[:32]
    return f"{name or 'admin'}@api"


def since_query(request: web.Request) -> float | None:
    """``?since=``: 15m, 2h, 7d, an ISO time or epoch seconds (None: not given)."""
    raw = request.query.get("since")
    return None if not raw else parse_since(raw)
