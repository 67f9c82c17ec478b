"""The lean ARI HTTP client's pure parts: response parser, request bytes, query encoding,
base URLs, retry decision. Pure: no event loop, no network."""

from __future__ import annotations

import errno
import socket
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from controller.adapters.ari.client import _query
from controller.adapters.ari.http import (
    HttpParseError,
    RequestBuilder,
    Response,
    ResponseParser,
    connect_reason,
    encode_query,
    may_retry,
    parse_base_url,
)

BODY = b'{"system":{"version":"16.28.0"},"build":{"os":"Linux"}}'
ASTERISK_200 = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: Asterisk/16.28.0~dfsg-0+deb11u10\r\n"
    b"Date: Wed, 25 Nov 2026 13:10:37 GMT\r\n"
    b"Cache-Control: no-cache, no-store\r\n"
    b"Content-type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n"
    b"\r\n" + BODY)
ASTERISK_204 = (b"HTTP/1.1 204 No Content\r\nServer: Asterisk/16.28.0\r\n"
                b"Content-Length: 0\r\n\r\n")
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
           b"\r\n"
           b"5;name=value\r\n{\"a\":\r\n"
           b"A \r\n [1, 2, 3]\r\n"
           b"1\r\n}\r\n"
           b"0;last\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n")


def feed_all(parser: ResponseParser, pieces: list[bytes]) -> list[Response]:
    out: list[Response] = []
    for piece in pieces:
        out += parser.feed(piece)
    return out


def one(data: bytes) -> Response:
    p = ResponseParser()
    got = p.feed(data)
    assert len(got) == 1 and not p.started
    return got[0]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


# ---------------------------------------------------------------------------- framing


def test_asterisk_answer_in_one_chunk() -> None:
    r = one(ASTERISK_200)
    assert (r.status, r.reason, r.body, r.keep_alive) == (200, "OK", BODY, True)
    assert r.headers["content-type"] == "application/json"
    assert r.headers["content-length"] == str(len(BODY))


@pytest.mark.parametrize("data", [ASTERISK_200, ASTERISK_204, CHUNKED])
def test_given_bytes_one_at_a_time_then_same_response(data: bytes) -> None:
    p = ResponseParser()
    got: list[Response] = []
    for i, piece in enumerate(bytewise(data)):
        got += p.feed(piece)
        if i < len(data) - 1:
            assert not got and p.started
    assert got == [one(data)]
    assert not p.started


@pytest.mark.parametrize("data", [ASTERISK_200, CHUNKED])
def test_given_any_split_point_then_same_response(data: bytes) -> None:
    want = one(data)
    for cut in range(1, len(data)):
        p = ResponseParser()
        assert feed_all(p, [data[:cut], data[cut:]]) == [want], cut


def test_204_has_no_body_and_keeps_the_connection() -> None:
    r = one(ASTERISK_204)
    assert (r.status, r.body, r.keep_alive) == (204, b"", True)
    r = one(b"HTTP/1.1 204 No Content\r\n\r\n")  # no Content-Length at all
    assert (r.status, r.body) == (204, b"")


def test_chunked_body_with_extensions_and_trailers() -> None:
    r = one(CHUNKED)
    assert r.body == b'{"a": [1, 2, 3]}'
    assert r.keep_alive
    assert "x-trailer" not in r.headers  # trailers are read and dropped


def test_chunked_wins_over_content_length() -> None:
    r = one(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"2\r\nok\r\n0\r\n\r\n")
    assert r.body == b"ok"


def test_connection_close_response() -> None:
    r = one(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
    assert (r.body, r.keep_alive) == (b"{}", False)
    r = one(b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n")
    assert not r.keep_alive


def test_http_1_0_closes_unless_keep_alive() -> None:
    assert not one(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive
    assert one(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
               ).keep_alive


def test_without_length_the_body_ends_with_the_connection() -> None:
    p = ResponseParser()
    assert p.feed(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhel") == []
    assert p.feed(b"lo") == []
    r = p.feed_eof()
    assert r is not None and (r.body, r.keep_alive) == (b"hello", False)
    assert not p.started


def test_other_transfer_coding_last_reads_until_close() -> None:
    p = ResponseParser()
    assert p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nxyz") == []
    r = p.feed_eof()
    assert r is not None and r.body == b"xyz" and not r.keep_alive


def test_two_responses_in_one_chunk() -> None:
    p = ResponseParser()
    got = p.feed(ASTERISK_204 + ASTERISK_200 + ASTERISK_204[:10])
    assert [r.status for r in got] == [204, 200]
    assert got[1].body == BODY
    assert p.started  # the third one is partial
    assert [r.status for r in p.feed(ASTERISK_204[10:])] == [204]


def test_interim_100_continue_is_skipped() -> None:
    r = one(b"HTTP/1.1 100 Continue\r\n\r\n" + ASTERISK_204)
    assert r.status == 204


def test_eof_between_responses_and_mid_response() -> None:
    p = ResponseParser()
    assert p.feed(ASTERISK_200) and p.feed_eof() is None and not p.started
    p.feed(ASTERISK_200[:-5])
    assert p.feed_eof() is None and p.started  # cut: the caller sees started


def test_large_body_in_many_pieces() -> None:
    body = bytes(range(256)) * 1000
    data = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    p = ResponseParser()
    got = feed_all(p, [data[i:i + 1000] for i in range(0, len(data), 1000)])
    assert len(got) == 1 and got[0].body == body


# ---------------------------------------------------------------------------- headers


def test_header_names_are_case_insensitive() -> None:
    r = one(b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 2\r\ncontent-TYPE:application/json\r\n"
            b"CoNnEcTiOn: Close\r\n\r\n{}")
    assert r.body == b"{}" and not r.keep_alive
    assert r.headers == {"content-length": "2", "content-type": "application/json",
                         "connection": "Close"}
    r = one(b"HTTP/1.1 200 OK\r\ntransfer-encoding: CHUNKED\r\n\r\n1\r\nx\r\n0\r\n\r\n")
    assert r.body == b"x"


def test_repeated_headers_joined_and_values_trimmed() -> None:
    r = one(b"HTTP/1.1 204 No Content\r\nVia: a\r\nVia:  b \t\r\n\r\n")
    assert r.headers["via"] == "a, b"


def test_obsolete_line_folding_continues_the_value() -> None:
    r = one(b"HTTP/1.1 204 No Content\r\nX-Long: one\r\n two\r\n\r\n")
    assert r.headers["x-long"] == "one two"


def test_equal_repeated_content_length_is_accepted() -> None:
    r = one(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok")
    assert r.body == b"ok"


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize("status_line", [
    b"HTTP/1.1 OK", b"HTTP/2 200 OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1 20 OK",
    b"ICY 200 OK", b"HTTP/1.1  200 OK", b"http/1.1 200 OK", b"HTTP/1.1 099 Low",
    b"HTTP/1.1 2x0 OK", b"<html>", b"HTTP/1.1 \xb2\xb2\xb2 OK",
])
def test_malformed_status_line_is_a_clear_error(status_line: bytes) -> None:
    with pytest.raises(HttpParseError, match="malformed status line") as exc:
        ResponseParser().feed(status_line + b"\r\nContent-Length: 0\r\n\r\n")
    assert exc.value.reason == "malformed status line"


def test_status_without_reason_phrase_is_fine() -> None:
    assert one(b"HTTP/1.1 204\r\n\r\n").status == 204


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1.5", b"5, 6", b"", b"0x10", b"\xb9",
                                   b"9" * 20])
def test_bad_content_length_is_a_clear_error(value: bytes) -> None:
    with pytest.raises(HttpParseError, match="bad Content-Length"):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\n")


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n folded-first: x\r\n\r\n",
])
def test_malformed_header_line(head: bytes) -> None:
    with pytest.raises(HttpParseError, match="malformed header line"):
        ResponseParser().feed(head)


@pytest.mark.parametrize("body", [b"zz\r\nab\r\n0\r\n\r\n", b"-1\r\n", b"0x2\r\nab\r\n",
                                  b"2\r\nabXY0\r\n\r\n"])
def test_bad_chunks(body: bytes) -> None:
    with pytest.raises(HttpParseError, match="chunk"):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)


def test_protocol_switch_is_refused() -> None:
    with pytest.raises(HttpParseError, match="protocol switch"):
        ResponseParser().feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")


def test_endless_head_is_refused() -> None:
    p = ResponseParser()
    p.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(HttpParseError, match="too large"):
        for _ in range(100):
            p.feed(b"X-Junk: " + b"a" * 1000 + b"\r\n")


# ---------------------------------------------------------------------------- requests

AUTH = {"Authorization": "Basic Y2FsbGN0bDpzM2NyM3QtUGE1NQ=="}


def test_get_request_bytes() -> None:
    b = RequestBuilder("127.0.0.1:8088", AUTH)
    assert b.build("GET", "/ari/asterisk/info") == (
        b"GET /ari/asterisk/info HTTP/1.1\r\nHost: 127.0.0.1:8088\r\n"
        b"Authorization: Basic Y2FsbGN0bDpzM2NyM3QtUGE1NQ==\r\n\r\n")


def test_post_without_body_sends_content_length_zero() -> None:
    data = RequestBuilder("h", AUTH).build("POST", "/ari/channels/c1/answer")
    assert data.endswith(b"\r\nContent-Length: 0\r\n\r\n")
    assert b"Content-Type" not in data


def test_json_body_request() -> None:
    body = b'{"variables": {"A": "1"}}'
    data = RequestBuilder("h", AUTH).build("POST", "/ari/channels?endpoint=PJSIP/a", body)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert rest == body
    assert head.startswith(b"POST /ari/channels?endpoint=PJSIP/a HTTP/1.1\r\n")
    assert b"\r\nContent-Type: application/json\r\n" in head + b"\r\n"
    assert b"\r\nContent-Length: %d" % len(body) in head


def test_unsafe_target_characters_are_escaped_not_injected() -> None:
    data = RequestBuilder("h").build("GET", "/ari/x y\r\nX-Evil: 1")
    line = data.split(b"\r\n", 1)[0]
    assert line == b"GET /ari/x%20y%0D%0AX-Evil:%201 HTTP/1.1"
    assert b"X-Evil: 1" not in data


def test_header_values_with_newlines_are_refused_without_showing_them() -> None:
    with pytest.raises(ValueError) as exc:
        RequestBuilder("h", {"Authorization": "Basic secret\r\nX: y"})
    assert "secret" not in str(exc.value)
    with pytest.raises(ValueError):
        RequestBuilder("h").build("GE T", "/")


# ---------------------------------------------------------------------------- query strings


def test_query_encoding_of_tricky_values() -> None:
    q = encode_query(_query({
        "endpoint": "PJSIP/agent3",
        "callerId": '"Name" <+1555>',
        "media": ["sound:hello", "sound:bye"],
        "appArgs": "leg,c1,a=b&c",
        "value": "50% #1 @home ü",
        "beep": True,
        "timeout": 30,
        "skipped": None,
    }))
    assert q == ("endpoint=PJSIP/agent3"
                 "&callerId=%22Name%22+%3C%2B1555%3E"
                 "&media=sound:hello,sound:bye"
                 "&appArgs=leg,c1,a%3Db%26c"
                 "&value=50%25+%231+@home+%C3%BC"
                 "&beep=true&timeout=30")


_VALUES = st.text(st.characters(blacklist_categories=("Cs",)))


@given(st.dictionaries(_VALUES, _VALUES, max_size=4))
def test_query_encoding_matches_yarl_and_round_trips(params: dict[str, str]) -> None:
    q = encode_query(params)
    assert q == URL("http://h/p").with_query(params).raw_query_string
    # Asterisk decodes '+' as space and %XX as UTF-8, like parse_qsl
    assert parse_qsl(q, keep_blank_values=True) == list(params.items())


# ---------------------------------------------------------------------------- base URLs


def test_base_urls() -> None:
    ep = parse_base_url("http://127.0.0.1:8088/ari")
    assert (ep.tls, ep.host, ep.port, ep.host_header, ep.base_path) == (
        False, "127.0.0.1", 8088, "127.0.0.1:8088", "/ari")
    ep = parse_base_url("https://pbx.example.org/ari/")
    assert (ep.tls, ep.port, ep.host_header, ep.base_path) == (
        True, 443, "pbx.example.org", "/ari")
    ep = parse_base_url("http://[::1]:8088/ari")
    assert (ep.host, ep.host_header) == ("::1", "[::1]:8088")
    ep = parse_base_url("http://bob:hunter2@pbx:80/ari")
    assert "hunter2" not in repr(ep) and ep.host_header == "pbx"
    for bad in ("ftp://h/ari", "http:///ari"):
        with pytest.raises(ValueError):
            parse_base_url(bad)


# ---------------------------------------------------------------------------- retry decision


@pytest.mark.parametrize(("method", "reused", "sent", "started", "retry"), [
    ("GET", True, True, False, True),      # stale keep-alive socket: idempotent, resend
    ("PUT", True, True, False, True),
    ("DELETE", True, True, False, True),
    ("POST", True, True, False, False),    # written: Asterisk may have acted on it
    ("POST", True, False, False, True),    # seen closed before writing: nothing went out
    ("GET", True, True, True, False),      # part of an answer came: never resend
    ("POST", True, False, True, False),
    ("GET", False, True, False, False),    # a fresh connection failing is a real failure
    ("POST", False, False, False, False),
])
def test_retry_decision(method: str, reused: bool, sent: bool, started: bool,
                        retry: bool) -> None:
    assert may_retry(method, reused=reused, sent=sent, response_started=started) is retry


# ---------------------------------------------------------------------------- reasons


def test_connect_reasons_are_short_and_addressless() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('10.0.0.1', 1)")
    assert connect_reason(refused) == "cannot connect: Connection refused"
    dns = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert connect_reason(dns) == "cannot connect: Name or service not known"
    assert connect_reason(OSError("Multiple exceptions: ...")) == "cannot connect: OSError"
