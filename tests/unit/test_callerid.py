from __future__ import annotations

import pytest

from controller.core.callerid import normalise, presentable, valid_did
from controller.shell.router import call_key


@pytest.mark.parametrize(("raw", "want"), [
    ("+1 (555) 010-0123", "+15550100123"),
    ("0044 20 7946 0000", "+442079460000"),
    ("5551234", "5551234"),
    ("", ""),
    (None, ""),
    ("anonymous", ""),
    ("555;1234", ""),
    ("sip:alice@example.com", ""),
    ("1" * 21, ""),
    ("+1555\r\nX-Evil: 1", ""),
    ("<+15551234>", ""),
])
def test_normalise(raw: str | None, want: str) -> None:
    assert normalise(raw) == want


def test_presentable_never_passes_raw_input() -> None:
    assert presentable("+1 555 0100") == "<+15550100>"
    assert presentable('"Eve" <sip:1@x>') is None


@pytest.mark.parametrize(("did", "ok"), [("+15550100", True), ("100", True), ("abc", False),
                                         ("+", False), ("1" * 21, False), ("12 3", False)])
def test_valid_did(did: str, ok: bool) -> None:
    assert valid_did(did) is ok


@pytest.mark.parametrize(("cid", "key"), [
    ("1732518000.12", "1732518000.12"),
    ("1732518000.12-L3", "1732518000.12"),
    ("1732518000.12-P10", "1732518000.12"),
    ("1732518000.12-B", "1732518000.12"),
    ("node-a-1732518000.12", "node-a-1732518000.12"),
])
def test_call_key(cid: str, key: str) -> None:
    assert call_key(cid) == key
