"""The ARI REST transport's pure parts (controller/adapters/ari/transport.py): query encoding
(as yarl, so aiohttp, does; Asterisk decodes it back) and connect-failure reasons. Pure: no
event loop, no network."""

from __future__ import annotations

import errno
import socket
from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from controller.adapters.ari.client import _query
from controller.adapters.ari.transport import connect_reason, encode_query


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


def test_connect_reasons_are_short_and_addressless() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('10.0.0.1', 1)")
    assert connect_reason(refused) == "cannot connect: Connection refused"
    dns = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert connect_reason(dns) == "cannot connect: Name or service not known"
    assert connect_reason(OSError("Multiple exceptions: ...")) == "cannot connect: OSError"
