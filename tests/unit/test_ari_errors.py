"""ARI error mapping, and the client's requests against a local fake ARI (aiohttp.web).

The fake answers like Asterisk 16: JSON ``{"message": ...}`` bodies on errors, 204 on void
operations. It records every request so the tests can check paths, query strings and headers.
"""

from __future__ import annotations

import base64
import json
import logging
import pickle
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from controller.adapters.ari.client import HANGUP_REASONS, AriClient, hangup_reason_for
from controller.adapters.ari.errors import (
    AriError,
    AriUnavailable,
    BadRequest,
    Conflict,
    NotFound,
    PreconditionFailed,
    ServerError,
    Unauthorized,
    Unprocessable,
    error_for,
)

USER, PASSWORD = "callctl", "s3cr3t-Pa55"

# ---------------------------------------------------------------------------- error_for


@pytest.mark.parametrize(("status", "cls"), [
    (400, BadRequest), (401, Unauthorized), (404, NotFound), (409, Conflict),
    (412, PreconditionFailed), (422, Unprocessable), (500, ServerError), (503, ServerError),
    (403, AriError), (405, AriError),
])
def test_given_status_then_matching_class(status: int, cls: type[AriError]) -> None:
    e = error_for(status, "post", "/channels/1.2/answer", None)
    assert type(e) is cls
    assert isinstance(e, AriError)
    assert (e.status, e.method, e.path) == (status, "POST", "/channels/1.2/answer")


@pytest.mark.parametrize("body", [
    b'{"message": "Channel not found"}',
    '{"message": "Channel not found"}',
    {"message": "Channel not found"},
    bytearray(b'  {"message":"Channel not found"}\n'),
])
def test_given_asterisk_json_body_then_message_extracted(body: Any) -> None:
    e = error_for(404, "DELETE", "/channels/1.2", body)
    assert e.message == "Channel not found"
    assert str(e) == "DELETE /channels/1.2: HTTP 404: Channel not found"


@pytest.mark.parametrize(("body", "message"), [
    (None, ""), (b"", ""), ("   ", ""), (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
    (b"{not json", "{not json"), ({"error": "Unauthorized"}, "Unauthorized"), ({}, ""),
    ([1, 2], "[1, 2]"),
])
def test_given_other_bodies_then_message_is_short_text_or_empty(body: Any, message: str) -> None:
    assert error_for(502, "GET", "/channels", body).message == message


def test_given_long_body_then_message_truncated() -> None:
    assert len(error_for(500, "GET", "/x", "x" * 10_000).message) <= 300


def test_given_path_with_query_then_query_dropped() -> None:
    e = error_for(400, "DELETE", "/channels/1?reason=bogus", None)
    assert e.path == "/channels/1"
    assert "reason" not in str(e)


def test_unavailable_is_an_ari_error_without_status() -> None:
    e = AriUnavailable("GET", "/asterisk/info", "cannot connect: Connection refused")
    assert isinstance(e, AriError) and e.status == 0
    assert str(e) == "GET /asterisk/info: ARI unavailable (cannot connect: Connection refused)"


def test_errors_pickle_and_repr() -> None:
    for e in (error_for(404, "GET", "/x", b'{"message":"m"}'), AriUnavailable("GET", "/y", "t")):
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and str(back) == str(e)
        assert type(e).__name__ in repr(e)


# ---------------------------------------------------------------------------- hangup reasons


def test_hangup_reasons_are_exactly_asterisk_16_names() -> None:
    # rest-api/api-docs/channels.json (16.28), DELETE /channels/{channelId}, param "reason"
    assert set(HANGUP_REASONS) == {
        "normal", "busy", "congestion", "no_answer", "timeout", "rejected", "unallocated",
        "normal_unspecified", "number_incomplete", "codec_mismatch", "interworking", "failure",
        "answered_elsewhere"}


@pytest.mark.parametrize(("cause", "reason"), [
    (16, "normal"), (17, "busy"), (1, "unallocated"), (19, "no_answer"), (21, "rejected"),
    (34, "congestion"), (38, "failure"), (127, "interworking"), (26, "answered_elsewhere"),
    (3, "unallocated"), (42, "congestion"), (20, "no_answer"),  # nearest equivalents
    (6, "normal_unspecified"), (45, "congestion"), (50, "failure"), (100, "interworking"),
])
def test_given_q850_cause_then_reason_name(cause: int, reason: str) -> None:
    assert hangup_reason_for(cause) == reason


# ---------------------------------------------------------------------------- fake ARI


class FakeAri:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: dict[tuple[str, str], tuple[int, Any]] = {}

    def reply(self, method: str, path: str, status: int, body: Any = None) -> None:
        self.replies[(method, path)] = (status, body)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.requests.append({
            "method": request.method,
            "raw_path": request.raw_path.split("?", 1)[0],
            "path": request.path,
            "query": dict(request.query),
            "auth": request.headers.get("Authorization"),
            "url": str(request.url),
            "body": json.loads(body) if body else None,
        })
        status, payload = self.replies.get((request.method, request.path), (204, None))
        if payload is None:
            return web.Response(status=status)
        return web.json_response(payload, status=status)

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeAri, AriClient]]:
    ari = FakeAri()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ari.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = AriClient(f"http://127.0.0.1:{server.port}", USER, PASSWORD, "callctl-test",
                       timeout=2.0)
    try:
        yield ari, client
    finally:
        await client.close()
        await server.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------- client


async def test_credentials_only_in_basic_auth_header(
        fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    ari.reply("GET", "/ari/asterisk/info", 200, {"system": {"version": "16.28.0"}})
    info = await client.asterisk_info()
    assert info == {"system": {"version": "16.28.0"}}
    r = ari.last
    assert r["auth"] == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert PASSWORD not in r["url"] and USER not in r["url"]
    assert PASSWORD not in repr(client) and PASSWORD not in str(vars(client).get("base_url"))


async def test_given_userinfo_in_base_url_then_it_is_not_sent_in_urls() -> None:
    c = AriClient("http://bob:hunter2@127.0.0.1:8088/", USER, PASSWORD, "app")
    assert c.base_url == "http://127.0.0.1:8088"
    assert "hunter2" not in repr(c)


async def test_given_404_then_not_found_with_asterisk_message_and_no_secret(
        fake: tuple[FakeAri, AriClient], caplog: pytest.LogCaptureFixture) -> None:
    ari, client = fake
    ari.reply("POST", "/ari/channels/gone.1/answer", 404, {"message": "Channel not found"})
    with caplog.at_level(logging.DEBUG), pytest.raises(NotFound) as exc:
        await client.answer("gone.1")
    e = exc.value
    assert (e.status, e.method, e.path, e.message) == (
        404, "POST", "/channels/gone.1/answer", "Channel not found")
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for text in (str(e), repr(e), caplog.text):
        assert PASSWORD not in text and token not in text


@pytest.mark.parametrize(("status", "cls"), [
    (400, BadRequest), (409, Conflict), (422, Unprocessable), (500, ServerError),
    (401, Unauthorized)])
async def test_given_error_status_then_client_raises_mapped_class(
        fake: tuple[FakeAri, AriClient], status: int, cls: type[AriError]) -> None:
    ari, client = fake
    ari.reply("POST", "/ari/bridges", status, {"message": "nope"})
    with pytest.raises(cls) as exc:
        await client.create_bridge("c1-B")
    assert exc.value.message == "nope"


async def test_given_nothing_listening_then_ari_unavailable() -> None:
    client = AriClient(f"http://127.0.0.1:{_free_port()}", USER, PASSWORD, "app", timeout=2.0)
    try:
        with pytest.raises(AriUnavailable) as exc:
            await client.list_channels()
    finally:
        await client.close()
    assert exc.value.status == 0 and exc.value.path == "/channels"
    assert PASSWORD not in str(exc.value)


async def test_given_slow_server_then_timeout_is_ari_unavailable() -> None:
    import asyncio

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = AriClient(f"http://127.0.0.1:{server.port}", USER, PASSWORD, "app", timeout=0.2)
    try:
        with pytest.raises(AriUnavailable, match=r"no answer within 0\.2 s"):
            await asyncio.wait_for(client.answer("1.1"), 3)
    finally:
        await client.close()
        await server.close()


async def test_one_pooled_session_reused_across_requests(
        fake: tuple[FakeAri, AriClient]) -> None:
    _, client = fake
    await client.ring("1.1")
    s = client.session
    await client.ring("1.1")
    assert client.session is s
    await client.close()
    assert client._session is None


async def test_async_with_opens_and_closes(fake: tuple[FakeAri, AriClient]) -> None:
    _, client = fake
    async with AriClient(client.base_url, USER, PASSWORD, "app") as c:
        assert await c.list_bridges() is None  # 204 from the fake
        s = c.session
    assert s.closed


# ---------------------------------------------------------------------------- parameters


async def test_hangup_sends_reason_name_never_reason_code(
        fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    await client.hangup("c1")
    assert ari.last["method"] == "DELETE" and ari.last["path"] == "/ari/channels/c1"
    assert ari.last["query"] == {}
    await client.hangup("c1", reason_code=1)
    assert ari.last["query"] == {"reason": "unallocated"}
    await client.hangup("c1", reason_code=17)
    assert ari.last["query"] == {"reason": "busy"}
    await client.hangup("c1", reason="congestion", reason_code=17)
    assert ari.last["query"] == {"reason": "congestion"}


async def test_hangup_native_reason_code_when_enabled(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    client.native_reason_code = True
    await client.hangup("c1", reason_code=3)
    assert ari.last["query"] == {"reason_code": "3"}


async def test_originate_params_and_variables_body(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    ari.reply("POST", "/ari/channels", 200, {"id": "c1-L1", "state": "Down"})
    ch = await client.originate("PJSIP/agent1", channel_id="c1-L1", app="callctl",
                                app_args="leg,c1", caller_id='"Shop" <+15551230000>',
                                timeout=25, variables={"CALLCTL_CALL": "c1", "N": 3})
    assert ch == {"id": "c1-L1", "state": "Down"}
    r = ari.last
    assert r["query"] == {"endpoint": "PJSIP/agent1", "app": "callctl", "appArgs": "leg,c1",
                          "callerId": '"Shop" <+15551230000>', "timeout": "25",
                          "channelId": "c1-L1"}
    assert r["body"] == {"variables": {"CALLCTL_CALL": "c1", "N": "3"}}


async def test_originate_without_variables_sends_no_body_and_defaults_app(
        fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    await client.originate("PJSIP/x@pstn", channel_id="c2-L1", app_args="leg,c2",
                           originator="c2")
    assert ari.last["body"] is None
    assert ari.last["query"]["app"] == "callctl-test"
    assert ari.last["query"]["originator"] == "c2"
    assert "callerId" not in ari.last["query"]


async def test_play_uses_playback_id_path_and_comma_joined_media(
        fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    await client.play("c1", ["sound:hello-world", "digits:123"], playback_id="c1-P1",
                      lang="de")
    assert ari.last["path"] == "/ari/channels/c1/play/c1-P1"
    assert ari.last["query"] == {"media": "sound:hello-world,digits:123", "lang": "de"}
    await client.stop_playback("c1-P1")
    assert (ari.last["method"], ari.last["path"]) == ("DELETE", "/ari/playbacks/c1-P1")


async def test_record_params_booleans_as_true_false(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    await client.record("c1", name="voicemail/sales/20240101-c1", max_duration=120, beep=False,
                        terminate_on="none")
    assert ari.last["path"] == "/ari/channels/c1/record"
    assert ari.last["query"] == {
        "name": "voicemail/sales/20240101-c1", "format": "wav", "maxDurationSeconds": "120",
        "maxSilenceSeconds": "0", "ifExists": "overwrite", "beep": "false",
        "terminateOn": "none"}
    await client.record("c1", name="n")
    assert ari.last["query"]["beep"] == "true" and ari.last["query"]["terminateOn"] == "#"


async def test_recording_name_with_slashes_is_one_encoded_segment(
        fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    await client.stop_recording("voicemail/sales/x 1")
    assert ari.last["raw_path"] == "/ari/recordings/live/voicemail%2Fsales%2Fx%201/stop"


async def test_bridge_helpers(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    await client.create_bridge("c1-B")
    assert ari.last["path"] == "/ari/bridges"
    assert ari.last["query"] == {"type": "mixing", "bridgeId": "c1-B"}
    await client.add_to_bridge("c1-B", ["c1", "c1-L2"])
    assert ari.last["path"] == "/ari/bridges/c1-B/addChannel"
    assert ari.last["query"] == {"channel": "c1,c1-L2"}
    await client.destroy_bridge("c1-B")
    assert (ari.last["method"], ari.last["path"]) == ("DELETE", "/ari/bridges/c1-B")


async def test_variables_and_continue(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    await client.set_var("c1", "CDR(userfield)", "a&b=c")
    assert ari.last["query"] == {"variable": "CDR(userfield)", "value": "a&b=c"}
    ari.reply("GET", "/ari/channels/c1/variable", 200, {"value": "42"})
    assert await client.get_var("c1", "X") == "42"
    ari.reply("GET", "/ari/channels/c1/variable", 404,
              {"message": "Provided variable was not found"})
    assert await client.get_var("c1", "X") is None
    ari.reply("GET", "/ari/channels/c1/variable", 404,
              {"message": "Provided channel was not found"})
    with pytest.raises(NotFound):
        await client.get_var("c1", "X")
    await client.continue_in_dialplan("c1", context="default", extension="s", priority=1)
    assert ari.last["path"] == "/ari/channels/c1/continue"
    assert ari.last["query"] == {"context": "default", "extension": "s", "priority": "1"}


async def test_list_and_get(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    ari.reply("GET", "/ari/channels", 200, [{"id": "a"}, {"id": "b"}])
    assert [c["id"] for c in await client.list_channels() or []] == ["a", "b"]
    ari.reply("GET", "/ari/channels/a", 200, {"id": "a", "state": "Up"})
    assert (await client.get_channel("a") or {})["state"] == "Up"
    ari.reply("GET", "/ari/bridges", 200, [])
    assert await client.list_bridges() == []


async def test_raw_request_encodes_params(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    await client.request("POST", "/x", params={"a": True, "b": False, "c": None, "d": ("p", "q"),
                                              "e": 1.5, "f": "+1 555"})
    assert ari.last["query"] == {"a": "true", "b": "false", "d": "p,q", "e": "1.5",
                                 "f": "+1 555"}
