"""``input`` node: collect digits into ``ctx.vars[variable]``; optionally POST them.

Digits are validated before any use: only ``0-9 * #``, at least ``min_digits``. An empty or
invalid entry replays the prompt (after ``invalid_prompt`` for an invalid one); after
``1 + retries`` tries the node ends with ``no_input``.

Without ``post`` the outcome is ``next``. With ``post`` the node sends
``{"call_id", "did", "caller", "node", <variable>: <digits>}`` as JSON and branches on the
answer, first match wins:

1. the request failed (no HTTP status: timeout, refused) -> ``error``
2. ``match``: the first ``field`` of the JSON body whose value is listed -> that node
3. ``on_status``: the exact status (``"404"``), then its class (``"4xx"``)
4. a 2xx status -> ``next``; anything else -> ``error``

"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from controller.core.flows import editor_parts as ep
from controller.core.model import (
    CallContext,
    Continue,
    Digits,
    HttpPost,
    HttpResponse,
    NodeGen,
    Prompt,
)
from controller.core.nodes.base import (
    MODEL_CONFIG,
    Checker,
    NodeBase,
    NodeRef,
    Path,
    PromptName,
    Prompts,
    Seconds,
)
from controller.core.patterns import FIELD_RE, KEYPAD_KEYS, STATUS_RE, VARIABLE_RE
from controller.core.prompts import media, resolve_prompt

__all__ = ["MODEL", "SCHEMA", "InputNode", "Post", "field_value", "run", "valid_digits"]



class Post(BaseModel):
    """POST ``{call_id, did, caller, node, <variable>: <digits>}`` as JSON to ``url``."""

    model_config = MODEL_CONFIG

    url: str = Field(max_length=2048)
    timeout: float = Field(3.0, gt=0, le=30)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r} is not an http(s) URL")
        if any(c.isspace() for c in v):
            raise ValueError("a URL cannot contain spaces")
        return v


def _status_key(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _check_status_key(v: str) -> str:
    if not STATUS_RE.fullmatch(v):
        raise ValueError(f"invalid status {v!r}: use a code like '200' or a class like '4xx'")
    return v


StatusKey = Annotated[
    str, BeforeValidator(_status_key, json_schema_input_type=str),
    AfterValidator(_check_status_key),
]


def _check_field(v: str) -> str:
    if not FIELD_RE.fullmatch(v):
        raise ValueError(f"invalid field {v!r}: use a JSON field name, dots for nesting")
    return v


def _match_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class InputNode(NodeBase):
    """Collect digits into ``ctx.vars[variable]``; optionally POST them and branch on the
    answer."""

    type: Literal["input"] = "input"
    prompt: Prompts
    variable: str = Field("input", description="ctx.vars key for the digits")
    digits: int = Field(10, ge=1, le=32, description="maximum number of digits")
    min_digits: int = Field(1, ge=1, le=32)
    terminator: Literal["#", "*", ""] = "#"
    timeout: Seconds = Field(5.0, description="seconds to wait for the first digit")
    inter_digit_timeout: Seconds = 3.0
    retries: int = Field(2, ge=0, le=10)
    invalid_prompt: PromptName = "invalid"
    sensitive: bool = Field(False, description="keep the digits out of the call trace")
    post: Post | None = None
    next: NodeRef | None = None
    no_input: NodeRef | None = None
    error: NodeRef | None = None
    on_status: dict[StatusKey, NodeRef] = Field(default_factory=dict)
    match: dict[
        Annotated[str, AfterValidator(_check_field)],
        dict[Annotated[str, BeforeValidator(_match_value, json_schema_input_type=str)], NodeRef],
    ] = Field(default_factory=dict)
    BRANCHES: ClassVar[tuple[str, ...]] = ("next", "no_input", "error")

    @field_validator("variable")
    @classmethod
    def _variable(cls, v: str) -> str:
        if not VARIABLE_RE.fullmatch(v):
            raise ValueError(f"invalid variable {v!r}: use lower-case letters, digits and '_'")
        if v in ("call_id", "did", "caller", "node"):
            raise ValueError(f"{v!r} is already in the request: choose another variable name")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> InputNode:
        if self.min_digits > self.digits:
            raise ValueError(f"min_digits ({self.min_digits}) is above digits ({self.digits})")
        if (self.on_status or self.match or self.error) and self.post is None:
            raise ValueError("on_status, match and error need a `post`")
        return self

    def targets(self) -> Iterator[tuple[Path, str]]:
        yield from super().targets()
        for code, target in self.on_status.items():
            yield ("on_status", code), target
        for fld, cases in self.match.items():
            for value, target in cases.items():
                yield ("match", fld, value), target

    def branch(self, key: str) -> str | None:
        """Keys: ``next``, ``no_input``, ``error``, ``status:<code or class>``,
        ``match:<field>=<value>``."""
        if key.startswith("status:"):
            return self.on_status.get(key[7:])
        if key.startswith("match:"):
            fld, _, value = key[6:].partition("=")
            return self.match.get(fld, {}).get(value)
        return super().branch(key)

    def prompts(self) -> Iterator[tuple[Path, str]]:
        for i, name in enumerate(self.prompt):
            yield ("prompt", i) if len(self.prompt) > 1 else ("prompt",), name
        yield ("invalid_prompt",), self.invalid_prompt

    def lint(self, check: Checker, fid: str, loc: Path) -> None:
        if self.no_input is None:
            check.warn((*loc, "[key]"), f"after {self.retries + 1} tries without valid digits "
                       "the call is hung up: set no_input", loc[-1])
        if self.post is not None and self.error is None:
            check.warn((*loc, "post"), "no `error` branch: when the request fails the call is "
                       "hung up", self.post.url)
        if self.next is None and self.post is None:
            check.warn((*loc, "[key]"), "no `next`: the call is hung up after the input",
                       loc[-1])

    def may_exit(self) -> bool:
        return self.no_input is None or self.next is None or (
            self.post is not None and self.error is None
        )


MODEL = InputNode


def valid_digits(digits: str, node: InputNode) -> bool:
    return (
        node.min_digits <= len(digits) <= node.digits
        and all(c in KEYPAD_KEYS for c in digits)
    )


def field_value(body: Any, path: str) -> str | None:
    """``body["a"]["b"]`` for ``"a.b"`` as a string (``true``/``false`` for booleans), or
    None when absent or not a scalar."""
    cur = body
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, int | float | str):
        return str(cur)
    return None


def _collect(node: InputNode, ctx: CallContext) -> Any:
    prompt = media(node.prompt, ctx)
    play = prompt
    failures = 0
    while True:
        res = yield Prompt(
            media=play, max_digits=node.digits, timeout=node.timeout,
            inter_digit_timeout=node.inter_digit_timeout, terminator=node.terminator,
            barge_in=True, sensitive=node.sensitive,
        )
        digits = res.digits if isinstance(res, Digits) else ""
        if digits and valid_digits(digits, node):
            return digits
        failures += 1
        outcome = "invalid" if digits else "no_input"
        ctx.log("input", node=node.id, result=outcome, attempt=failures,
                length=len(digits))
        if failures > node.retries:
            return None
        play = (resolve_prompt(node.invalid_prompt, ctx), *prompt) if digits else prompt


def run(node: InputNode, ctx: CallContext) -> NodeGen:
    digits = yield from _collect(node, ctx)
    if digits is None:
        return Continue("no_input")
    ctx.vars[node.variable] = digits
    ctx.log("input", node=node.id, variable=node.variable,
            digits="*" * len(digits) if node.sensitive else digits)
    if node.post is None:
        return Continue("next")

    payload = {"call_id": ctx.call_id, "did": ctx.did, "caller": ctx.caller,
               "node": node.id, node.variable: digits}
    resp = yield HttpPost(url=node.post.url, payload=payload, timeout=node.post.timeout)
    if not isinstance(resp, HttpResponse) or resp.status == 0:
        error = getattr(resp, "error", None) or "no response"
        ctx.log("http", node=node.id, url=node.post.url, status=0, error=error)
        return Continue("error")
    ctx.log("http", node=node.id, url=node.post.url, status=resp.status)
    if isinstance(resp.body, dict):
        for fld, cases in node.match.items():
            value = field_value(resp.body, fld)
            if value is not None and value in cases:
                return Continue(f"match:{fld}={value}")
    for key in (str(resp.status), f"{resp.status // 100}xx"):
        if key in node.on_status:
            return Continue(f"status:{key}")
    return Continue("next" if 200 <= resp.status < 300 else "error")


# ---------------------------------------------------------------------------------------------
# The editor JSON Schema (`callctl schema`, controller.core.flows.editor_schema): what the
# models alone would not say.

URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@]*@?[^\s/?#@:]+(?::[0-9]*)?(?:[/?#]\S*)?$"

_INPUT_NODE_FIELDS: dict[str, Any] = {
    **ep.NODE_COMMON,
    "prompt": ep.prompts("What to play before collecting digits"),
    "variable": {"allOf": [{"type": "string", "pattern": VARIABLE_RE.pattern},
                           {"not": {"enum": ["call_id", "did", "caller", "node"]}}],
                 "description": "Name the digits are kept (and posted) under: lower-case "
                                "letters, digits and '_' (e.g. account)"},
    "digits": "Most digits to collect, 1-32 (e.g. 8).",
    "min_digits": "Fewest digits that count as an answer, 1-32.",
    "terminator": "The key that ends the input early (# or *; empty: none).",
    "timeout": ep.seconds("Seconds to wait for the first digit (e.g. 5)", 60),
    "inter_digit_timeout": ep.seconds("Seconds to wait for each next digit (e.g. 3)", 60),
    "retries": "Replays after no valid input (0-10).",
    "invalid_prompt": ep.prompt("Played before a replay"),
    "sensitive": ep.boolean("Keep the digits out of the call trace (PINs, card numbers)."),
    "post": "POST the digits to a URL and branch on the answer.",
    "next": ep.nullable(ep.node_ref("Where to go with the digits (or when the POST succeeded "
                                    "without a match)")),
    "no_input": ep.nullable(ep.node_ref("Where to go without valid digits after every try")),
    "error": ep.nullable(ep.node_ref("Where to go when the POST fails (needs post)")),
    "on_status": {"description": "HTTP status -> node id: a code or a class "
                                 "(e.g. {\"404\": not-found, \"5xx\": sorry}; needs post)",
                  "type": "object", "propertyNames": {"pattern": STATUS_RE.pattern},
                  "additionalProperties": ep.node_ref()},
    "match": {"description": "Answer field -> {value -> node id}; dots for nesting "
                             "(e.g. {status: {open: agent}}; needs post)",
              "type": "object", "propertyNames": {"pattern": FIELD_RE.pattern},
              "additionalProperties": {"type": "object",
                                       "additionalProperties": ep.node_ref()}},
}

_POST_FIELDS: dict[str, Any] = {
    "url": ep.string(URL_PATTERN, "http(s) URL to POST to (e.g. https://crm.example/lookup)",
                     maxLength=2048),
    "timeout": ep.seconds("Seconds to wait for the answer (e.g. 3)", 30),
}

SCHEMA: dict[str, ep.Definition] = {
    "InputNode": ep.Definition(
        "Collect digits; optionally POST them as JSON and branch on the answer.",
        _INPUT_NODE_FIELDS,
        rules={"anyOf": [
            {"required": ["post"], "properties": {"post": {"type": "object"}}},
            {"properties": {"on_status": {"maxProperties": 0}, "match": {"maxProperties": 0},
                            "error": {"type": "null"}}},
        ]},
    ),
    "Post": ep.Definition(
        "POST {call_id, did, caller, node, <variable>: <digits>} as JSON to url.",
        _POST_FIELDS,
    ),
}
