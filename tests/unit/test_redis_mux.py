"""controller.store.mux: RESP2 encoding and parsing (pure; the connection itself is used by
every integration test through the store and the leases, against the real Redis)."""

from __future__ import annotations

import hashlib

import pytest
from redis.exceptions import ResponseError

from controller.store.mux import ProtocolError, RespParser, Script, encode

STREAM = (b"+OK\r\n:42\r\n$5\r\nh\xc3\xa9lo\r\n$-1\r\n"
          b"*3\r\n:1\r\n$0\r\n\r\n*2\r\n$1\r\na\r\n$-1\r\n"
          b"-NOSCRIPT No matching script\r\n*-1\r\n*0\r\n")
WANT = ["OK", 42, "hélo", None, [1, "", ["a", None]], "NOSCRIPT No matching script", None, []]


def _norm(replies: list[object]) -> list[object]:
    return [str(r) if isinstance(r, ResponseError) else r for r in replies]


def test_encode_is_a_resp_array_of_bulk_strings() -> None:
    assert encode(["SET", "k", "vé", 3, 1.5, b"\x00"]) == (
        b"*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\xc3\xa9\r\n$1\r\n3\r\n$3\r\n1.5\r\n"
        b"$1\r\n\x00\r\n")


@pytest.mark.parametrize("bad", [True, None, object()])
def test_encode_refuses_what_redis_would_get_wrong(bad: object) -> None:
    with pytest.raises(TypeError):
        encode(["SET", "k", bad])


def test_parser_whole_stream() -> None:
    replies = RespParser().feed(STREAM)
    assert isinstance(replies[5], ResponseError)
    assert _norm(replies) == WANT


def test_parser_byte_by_byte_gives_the_same_replies_in_order() -> None:
    p = RespParser()
    got: list[object] = []
    for i in range(len(STREAM)):
        got += p.feed(STREAM[i:i + 1])
    assert _norm(got) == WANT


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_parser_any_split_point(cut: int) -> None:
    p = RespParser()
    assert _norm(p.feed(STREAM[:cut]) + p.feed(STREAM[cut:])) == WANT


def test_a_bulk_string_may_contain_crlf() -> None:
    assert RespParser().feed(b"$4\r\na\r\nb\r\n") == ["a\r\nb"]


@pytest.mark.parametrize("bad", [b"?x\r\n", b":12a\r\n", b"$3\r\nabcXY", b"\r\n"])
def test_parser_malformed_stream_is_a_protocol_error(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        RespParser().feed(bad)


def test_script_sha_is_the_sha1_redis_computes() -> None:
    src = "return 1"
    assert Script(src).sha == hashlib.sha1(src.encode()).hexdigest()
