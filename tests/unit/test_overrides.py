"""controller.core.overrides: a user's stored overrides; bad ones are logged once and skipped."""

from __future__ import annotations

import logging
import uuid

import pytest

from controller.core.flows.directory import Window
from controller.core.model import UserFacts
from controller.core.overrides import user_facts

GOOD = {"receive_calls": "0", "alternate": "+15550199", "timezone": "Asia/Tokyo",
        "availability": '[{"days": ["mon", "tue"], "start": "09:00", "end": "17:00"}]'}


def _key() -> str:
    return f"t{uuid.uuid4().hex[:6]}:user:alice"  # a fresh key: not yet reported


def test_good_values_parse() -> None:
    f = user_facts("call-1", "12.5", GOOD, _key())
    assert f == UserFacts(busy=True, last_call_end=12.5, receive_calls=False,
                          alternate="+15550199", timezone="Asia/Tokyo",
                          availability=(Window(days=["mon", "tue"], start="09:00",
                                               end="17:00"),))
    assert user_facts(None, None, None) == UserFacts()
    # "" clears the flow's alternate; [] is "always available": both are values, not junk
    assert user_facts(0, None, {"alternate": "", "availability": "[]"}).alternate == ""
    assert user_facts(0, None, {"availability": "[]"}).availability == ()


@pytest.mark.parametrize(("field", "value"), [
    ("availability", "not json"),
    ("availability", "{broken"),
    ("availability", "5"),
    ("availability", '{"days": ["mon"]}'),
    ("availability", '[{"days": ["funday"], "start": "09:00", "end": "17:00"}]'),
    ("availability", '[{"days": ["mon"], "start": "25:00", "end": "17:00"}]'),
    ("availability", "[1, null, []]"),
    ("availability", "[" * 5000),
    ("receive_calls", "yes"),
    ("alternate", "not a number!"),
    ("timezone", "Mars/Olympus_Mons"),
    ("timezone", "../../etc/passwd"),
])
def test_a_bad_value_is_skipped_and_logged_once(caplog: pytest.LogCaptureFixture, field: str,
                                                value: str) -> None:
    key = _key()
    over = {**GOOD, field: value}
    with caplog.at_level(logging.WARNING, "callctl.store"):
        facts = [user_facts(None, None, over, key) for _ in range(3)]
    good = user_facts(None, None, GOOD, key)
    want = {"availability": None, "receive_calls": None, "alternate": None, "timezone": None}
    for f in facts:  # the bad field as if not set (the published value applies), the rest kept
        for name in want:
            assert getattr(f, name) == (want[name] if name == field else getattr(good, name))
    logs = [r.getMessage() for r in caplog.records]
    assert len(logs) == 1, logs
    assert key in logs[0] and f"field {field} " in logs[0]
    assert repr(value[:80]) in logs[0]


def test_a_long_bad_value_is_truncated_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    value = "x" * 5000
    with caplog.at_level(logging.WARNING, "callctl.store"):
        user_facts(None, None, {"availability": value}, _key())
    (msg,) = [r.getMessage() for r in caplog.records]
    assert "... (5000 chars)" in msg and len(msg) < 400


def test_another_bad_value_of_the_same_field_is_logged_again(
        caplog: pytest.LogCaptureFixture) -> None:
    key = _key()
    with caplog.at_level(logging.WARNING, "callctl.store"):
        for v in ("bad1", "bad2", "bad1"):
            user_facts(None, None, {"receive_calls": v}, key)
    assert len(caplog.records) == 2
