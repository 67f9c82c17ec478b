"""Admin API pieces without a network: bearer-token auth (middleware on mocked requests),
body parsing with field paths, the OpenAPI document, the diagram's graph data."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from controller.admin import diagram
from controller.admin.http import BadRequest, field_path, parse_body
from controller.admin.middleware import auth, check_query, token_ok
from controller.admin.openapi import document
from controller.admin.routes import HANDLERS, PUBLIC_PATHS, ROUTE_OF, ROUTES
from controller.admin.routes.blocklist import BlockBody
from controller.admin.routes.diagram import h_live
from controller.admin.routes.failover import FailoverTestBody
from controller.admin.routes.flows import FlowFilesBody, RollbackBody
from controller.admin.routes.health import h_health
from controller.admin.routes.simulate import SimulateBody
from controller.admin.routes.users import AlternateBody, AvailabilityBody, OptOutBody
from controller.admin.server import AdminServer
from controller.config import PROJECT_ROOT, Settings
from controller.core.flows import loader

TOKEN = "tok-" + "x" * 28


def server(token: str = TOKEN) -> AdminServer:
    store = types.SimpleNamespace(p="t:", redis=None)
    ctl = types.SimpleNamespace(settings=Settings(admin_token=token), store=store)
    return AdminServer(ctl, port=0)  # type: ignore[arg-type]


class Handler:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        return web.json_response({"ok": True})


async def through_auth(srv: AdminServer, method: str, path: str,
                       headers: dict[str, str] | None = None) -> tuple[int, Handler, Any]:
    h = Handler()
    resp = await auth(srv.token)(make_mocked_request(method, path, headers=headers or {}), h)
    assert isinstance(resp, web.Response)
    body = json.loads(resp.body) if resp.body else None  # type: ignore[arg-type]
    return resp.status, h, (resp, body)


# ---------------------------------------------------------------------------- auth


def test_token_ok_is_exact_bearer_match() -> None:
    assert token_ok(f"Bearer {TOKEN}", TOKEN)
    assert token_ok(f"bearer  {TOKEN} ", TOKEN)  # scheme is case-insensitive
    for header in ("", TOKEN, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ",
                   f"Basic {TOKEN}", f"Token {TOKEN}"):
        assert not token_ok(header, TOKEN), header
    assert not token_ok("Bearer ", "")  # no token configured: nobody gets in


async def test_given_no_or_wrong_token_then_401_and_handler_never_runs() -> None:
    srv = server()
    for headers in ({}, {"Authorization": "Bearer nope"},
                    {"Authorization": f"Basic {TOKEN}"}):
        for method, path in (("PUT", "/users/alice/opt-out"), ("POST", "/blocklist"),
                             ("GET", "/metrics"), ("GET", "/users"),
                             ("POST", "/health"), ("DELETE", "/flows/diagram")):
            status, h, (resp, body) = await through_auth(srv, method, path, headers)
            assert status == 401 and h.calls == 0, (method, path, headers)
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert body["status"] == 401 and TOKEN not in json.dumps(body)


async def test_given_right_token_then_handler_runs() -> None:
    status, h, _ = await through_auth(server(), "PUT", "/users/alice/opt-out",
                                      {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and h.calls == 1


async def test_public_reads_need_no_token() -> None:
    assert PUBLIC_PATHS == {"/health", "/openapi.json", "/flows/diagram"}
    for path in sorted(PUBLIC_PATHS):
        status, h, _ = await through_auth(server(), "GET", path)
        assert status == 200 and h.calls == 1, path


# ---------------------------------------------------------------------------- bodies


def test_field_path_format() -> None:
    assert field_path(("windows", 1, "start")) == "windows[1].start"
    assert field_path(("files", "a.yaml")) == "files.a.yaml"
    assert field_path(()) == ""


@pytest.mark.parametrize(("raw", "field", "text"), [
    (b"", "(body)", "required"),
    (b'{"opted_out": tru', "(body)", "line 1 column"),
    (b"\xff\xfe{}", "(body)", "UTF-8"),
    (b"[true]", "(body)", "JSON object"),
    (b'{"opted_out": "maybe"}', "opted_out", "boolean"),
    (b'{"opted_out": true, "extra": 1}', "extra", "not permitted"),
    (b"{}", "opted_out", "required"),
])
def test_bad_bodies_name_the_field(raw: bytes, field: str, text: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_body(raw, OptOutBody)
    assert err.value.status == 400 and err.value.field == field
    assert text in err.value.message


@pytest.mark.parametrize(("model", "raw", "field", "value"), [
    (OptOutBody, b'{"opted_out": "yes"}', "opted_out", "yes"),  # issue 13 item 15
    (OptOutBody, b'{"opted_out": 1}', "opted_out", 1),
    (OptOutBody, b'{"opted_out": "true"}', "opted_out", "true"),
    (FailoverTestBody, b'{"line": "sales", "seconds": "900"}', "seconds", "900"),
    (FailoverTestBody, b'{"line": "sales", "seconds": 900.0}', "seconds", 900.0),
    (FailoverTestBody, b'{"line": "sales", "seconds": true}', "seconds", True),
    (FailoverTestBody, b'{"line": 15550100, "seconds": 60}', "line", 15550100),
    (AlternateBody, b'{"alternate": null, "reset": "no"}', "reset", "no"),
    (RollbackBody, b'{"version": "2"}', "version", "2"),
    (BlockBody, b'{"number": ["+1555"]}', "number", ["+1555"]),
    (FlowFilesBody, b'{"files": {"a.yaml": 5}}', "files.a.yaml", 5),
    (FlowFilesBody, b'{"files": [["a.yaml", "x"]]}', "files", [["a.yaml", "x"]]),
    (SimulateBody, b'{"did": "+1555", "digits": "12"}', "digits", "12"),
    (SimulateBody, b'{"did": 1555}', "did", 1555),
    (AvailabilityBody, b'{"windows": "mon-fri 09:00-17:00"}', "windows",
     "mon-fri 09:00-17:00"),
])
def test_bodies_are_strict_and_the_error_names_field_and_value(
        model: type[Any], raw: bytes, field: str, value: Any) -> None:
    with pytest.raises(BadRequest) as err:
        parse_body(raw, model)
    e = err.value
    assert (e.status, e.field, e.extra["value"]) == (400, field, value)
    assert e.message.startswith(f"{field}: ") and json.dumps(value) in e.message
    assert e.extra["errors"][0] == {"field": field, "value": value,
                                    "message": e.message.split(": ", 1)[1]}


def test_a_huge_bad_value_is_cut_in_the_error() -> None:
    with pytest.raises(BadRequest) as err:
        parse_body(b'{"opted_out": "' + b"y" * 10_000 + b'"}', OptOutBody)
    assert len(err.value.extra["value"]) == 80 and len(err.value.message) < 200


@pytest.mark.parametrize(("path", "field", "text"), [
    ("/calls?limt=5", "limt", "unknown query parameter 'limt' (allowed: limit, live, since)"),
    ("/users?x=1", "x", "allowed: none"),
    ("/calls?limit=5&limit=6", "limit", "more than once"),
])
def test_unknown_or_repeated_query_parameters_are_refused(path: str, field: str,
                                                          text: str) -> None:
    srv = server()
    req = make_mocked_request("GET", path, app=srv.app())
    route = ROUTE_OF[("GET", path.split("?")[0])]
    with pytest.raises(BadRequest) as err:
        check_query(req, route)
    assert err.value.status == 400 and err.value.field == field and text in err.value.message


def test_good_bodies_parse() -> None:
    assert parse_body(b'{"opted_out": null}', OptOutBody).opted_out is None
    b = parse_body(b'{"did": "+1555", "from": "+1666", "digits": ["1"]}', SimulateBody)
    assert b.from_ == "+1666" and b.digits == ["1"]
    a = parse_body(b'{"windows": ["mon 09:00-10:00", {"days": "sat", "start": "1:00", '
                   b'"end": "2:00"}]}', AvailabilityBody)
    assert a.mode == "set" and len(a.windows) == 2
    with pytest.raises(BadRequest) as err:
        parse_body(b'{"mode": "sometimes"}', AvailabilityBody)
    assert err.value.field == "mode"


# ---------------------------------------------------------------------------- OpenAPI


GOLDEN = Path(__file__).with_name("openapi_golden.json")


def test_openapi_document_is_the_recorded_one() -> None:
    """``/openapi.json`` is what clients are generated from: the document (paths, their order,
    schemas, statuses) is the recorded one, so moving routes between modules cannot change
    it. Changing the API on purpose: record it again with
    ``python -c 'import json; from controller.admin.openapi import document;
    from controller.admin.routes import ROUTES; print(json.dumps(document(ROUTES), indent=1))'
    > tests/unit/openapi_golden.json``."""
    assert json.dumps(document(ROUTES), indent=1) + "\n" == GOLDEN.read_text()


def test_openapi_describes_every_route_and_its_auth() -> None:
    doc = document(ROUTES)
    assert doc["openapi"] == "3.1.0"
    want = {(r.path, r.method.lower()) for r in ROUTES}
    have = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert have == want
    for r in ROUTES:
        op = doc["paths"][r.path][r.method.lower()]
        assert callable(HANDLERS[r.handler]), r.handler
        assert op["security"] == ([] if r.public else [{"bearerAuth": []}])
        if not r.public:
            assert "401" in op["responses"]
        if r.body is not None:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
        for p in r.params:
            if p.where == "path":
                assert "{" + p.name + "}" in r.path
    json.dumps(doc)  # serialisable
    body = doc["components"]["schemas"]["SimulateBody"]
    assert "from" in body["properties"] and "from_" not in body["properties"]


def test_every_route_is_registered_on_the_app() -> None:
    app = server().app()
    registered = {(r.method, r.resource.canonical) for r in app.router.routes()  # type: ignore[union-attr]
                  if r.method != "HEAD"}
    assert registered == {(r.method, r.path) for r in ROUTES}


# ---------------------------------------------------------------------------- diagram data


def example_flowset() -> Any:
    res = loader.load([PROJECT_ROOT / "flows" / "examples"])
    assert not res.errors
    return res.flowset


def test_graph_of_example_flows() -> None:
    g = diagram.flow_graphs(example_flowset(), 3)
    assert g["version"] == 3
    flows = {f["id"]: f for f in g["flows"]}
    main = flows["main"]
    nodes = {n["id"]: n for n in main["nodes"]}
    assert main["entry"] == "office-hours" and main["dids"] == ["+15550100", "+15550101"]
    assert nodes["sales"]["label"] == "department sales"
    assert nodes["sales"]["detail"] == ["Sales: serial", "rings alice, bob"]
    assert nodes["support"]["detail"][0] == "Support: simultaneous"
    assert nodes["failover:sales"] == {"id": "failover:sales", "type": "failover",
                                       "label": "failover (sales)",
                                       "detail": ["voicemail: sales"]}
    edges = {(e["from"], e["to"]): e["label"] for e in main["edges"]}
    assert edges[("main-menu", "sales")] == "1, 0, fallback"  # one edge, every key on it
    assert edges[("main-menu", "support-menu")] == "2"
    assert edges[("office-hours", "closed")] == "closed, holiday"
    assert edges[("sales", "failover:sales")] == "fallback"
    # every edge joins drawn nodes
    assert all(a in nodes and b in nodes for a, b in edges)
    direct = {n["id"]: n for n in flows["direct"]["nodes"]}
    assert direct["failover:alice"]["label"] == "voicemail (alice)"


def test_goto_other_flow_is_a_flow_node_and_no_flowset_is_empty() -> None:
    res = loader.load_text("""
users: {a: {endpoint: agent1}}
flows:
  one: {dids: ["+1555000"], entry: g, nodes: {g: {type: goto, flow: two}}}
  two: {entry: h, nodes: {h: {type: hangup}}}
""")
    assert not res.errors, res.errors
    one = diagram.flow_graphs(res.flowset)["flows"][0]
    assert {"from": "g", "to": "flow:two", "label": "goto"} in one["edges"]
    assert diagram.flow_graphs(None) == {"version": None, "flows": []}


def test_live_positions_count_calls_per_node() -> None:
    calls = [{"flow": "main", "node": "menu"}, {"flow": "main", "node": "menu"},
             {"flow": "main", "node": "sales"}, {"flow": None, "node": None}]
    assert diagram.live_positions(calls) == {"main": {"menu": 2, "sales": 1}}


def test_diagram_page_is_self_contained() -> None:
    html = (Path(diagram.__file__).with_name("diagram.html")).read_text()
    assert "<script src" not in html and "http://" not in html.replace(
        "http://www.w3.org/2000/svg", "")
    assert "https://" not in html and "@import" not in html


# ---------------------------------------------------------------------------- /health


class FakeAri:
    def __init__(self, ok: bool) -> None:
        self.ok = ok

    async def asterisk_info(self) -> dict[str, Any]:
        if not self.ok:
            raise ConnectionRefusedError
        return {"system": {"version": "16"}}


class FakeStore:
    p = "t:"
    redis = None

    def __init__(self, ok: bool) -> None:
        self.ok = ok

    async def ping(self) -> bool:
        return self.ok


@pytest.mark.parametrize(("ari_ok", "events", "redis_ok", "failing"), [
    (True, True, True, []),
    (True, True, False, ["redis"]),
    (False, True, True, ["ari"]),
    (True, False, True, ["ari"]),  # REST answers but no event websocket: no calls come in
    (False, False, False, ["ari", "redis"]),
])
async def test_health_names_what_is_down(ari_ok: bool, events: bool, redis_ok: bool,
                                         failing: list[str]) -> None:
    ctl = types.SimpleNamespace(settings=Settings(admin_token=TOKEN), store=FakeStore(redis_ok),
                                ari=FakeAri(ari_ok),
                                stream=types.SimpleNamespace(connected=events))
    srv = AdminServer(ctl, port=0)  # type: ignore[arg-type]
    resp = await h_health(srv.api, make_mocked_request("GET", "/health"))
    body = json.loads(resp.body)  # type: ignore[arg-type]
    assert resp.status == (200 if not failing else 503)
    assert body["ready"] is (not failing) and body["failing"] == failing


async def test_health_is_503_naming_ari_replaced_after_another_websocket_took_our_app(
        ) -> None:
    """The stream took the app back (connected again), but calls were not heard meanwhile
    and someone else is listening as us: /health says so for a while (REPLACED_HOLD_S)."""
    stream = types.SimpleNamespace(connected=True, replaced=3, replaced_at=0.0,
                                   replaced_recently=lambda: True)
    ctl = types.SimpleNamespace(settings=Settings(admin_token=TOKEN), store=FakeStore(True),
                                ari=FakeAri(True), stream=stream)
    srv = AdminServer(ctl, port=0)  # type: ignore[arg-type]
    resp = await h_health(srv.api, make_mocked_request("GET", "/health"))
    body = json.loads(resp.body)  # type: ignore[arg-type]
    assert resp.status == 503 and body["failing"] == ["ari_replaced"]
    assert "taken over by another websocket 3 time(s)" in body["checks"]["ari_replaced"]["error"]
    stream.replaced_recently = lambda: False  # a minute later
    resp = await h_health(srv.api, make_mocked_request("GET", "/health"))
    assert resp.status == 200


async def test_live_merges_own_calls_with_other_controllers_bridged_calls() -> None:
    fs = example_flowset()
    own = types.SimpleNamespace(
        id="c1", started=1.0, version=4,
        ctx=types.SimpleNamespace(did="+15550100", caller="+1555", vars={"_flow": "main"},
                                  path=["office-hours", "welcome", "main-menu"],
                                  answered_by=None))

    class Store(FakeStore):
        async def live_calls(self) -> list[dict[str, str]]:
            return [{"id": "c1", "did": "+15550100"},  # ours: listed once
                    {"id": "c2", "did": "+15550101", "path": '["office-hours", "sales"]',
                     "answered_by": "bob"},  # bridged on another controller
                    {"id": "c3", "did": "+15550199"}]  # another's, still in its IVR

    ctl = types.SimpleNamespace(settings=Settings(admin_token=TOKEN), store=Store(True),
                                flows=types.SimpleNamespace(current=(4, fs)),
                                calls={"c1": own})
    srv = AdminServer(ctl, port=0)  # type: ignore[arg-type]
    resp = await h_live(srv.api, make_mocked_request("GET", "/flows/live"))
    body = json.loads(resp.body)  # type: ignore[arg-type]
    assert body["version"] == 4
    assert [(c["call_id"], c["flow"], c["node"], c["here"]) for c in body["calls"]] == [
        ("c1", "main", "main-menu", True), ("c2", "main", "sales", False),
        ("c3", "direct", None, False)]
    assert body["positions"] == {"main": {"main-menu": 1, "sales": 1}}
