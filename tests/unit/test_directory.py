from __future__ import annotations

from datetime import datetime

import pytest
import yaml
from pydantic import ValidationError

from controller.core.flows.departments import (
    Department,
    Failover,
    Sticky,
    department_problems,
    department_warnings,
    departments_from_mapping,
)
from controller.core.flows.directory import (
    User,
    Window,
    normalise_alternate,
    user_problems,
    users_from_mapping,
)
from controller.core.flows.settings import OutcomeMap, Settings
from controller.core.flows.values import parse_duration


def test_window_day_ranges_and_lists() -> None:
    assert Window(days="mon-fri", start="09:00", end="17:00").days == [
        "mon", "tue", "wed", "thu", "fri"]
    assert Window(days=["sat", "mon-tue"], start="09:00", end="17:00").days == [
        "mon", "tue", "sat"]
    assert Window(days="fri-mon", start="09:00", end="17:00").days == [
        "mon", "fri", "sat", "sun"]
    assert Window(days="mon,wed", start="09:00", end="17:00").days == ["mon", "wed"]
    with pytest.raises(ValidationError):
        Window(days="mon-xyz", start="09:00", end="17:00")
    with pytest.raises(ValidationError):
        Window(days=[], start="09:00", end="17:00")


def test_window_times() -> None:
    w = Window(days=["mon"], start="9:05", end="24:00")
    assert (w.start, w.end, w.overnight) == ("09:05", "24:00", False)
    with pytest.raises(ValidationError):
        Window(days=["mon"], start="24:00", end="23:00")
    with pytest.raises(ValidationError):
        Window(days=["mon"], start="10:00", end="10:00")
    with pytest.raises(ValidationError):
        Window(days=["mon"], start="10:60", end="11:00")
    with pytest.raises(ValidationError):
        Window(days=["mon"], start="25:00", end="11:00")


def test_window_yaml_sexagesimal() -> None:
    # PyYAML reads 9:30 as 570 and 24:00 as 1440
    data = yaml.safe_load("days: mon-fri\nstart: 9:30\nend: 24:00\n")
    w = Window.model_validate(data)
    assert (w.start, w.end) == ("09:30", "24:00")


def test_window_contains_overnight() -> None:
    w = Window(days=["fri"], start="22:00", end="06:00")
    assert w.overnight
    assert w.contains(datetime(2025, 6, 6, 23, 0))  # Friday 23:00
    assert w.contains(datetime(2025, 6, 7, 5, 59))  # Saturday 05:59
    assert not w.contains(datetime(2025, 6, 7, 6, 0))  # Saturday 06:00
    assert not w.contains(datetime(2025, 6, 7, 23, 0))  # Saturday 23:00
    assert not w.contains(datetime(2025, 6, 6, 5, 0))  # Friday 05:00 (Thursday not listed)


def test_window_is_frozen_and_forbids_extra() -> None:
    w = Window(days=["mon"], start="09:00", end="17:00")
    with pytest.raises(ValidationError):
        w.start = "10:00"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Window(days=["mon"], start="09:00", end="17:00", tz="UTC")  # type: ignore[call-arg]


def test_user_defaults_and_validation() -> None:
    u = User(id="alice", endpoint="alice")
    assert (u.receive_calls, u.availability, u.timezone, u.alternate, u.mailbox) == (
        True, [], None, None, "alice")
    assert User(id="bob", endpoint="bob", mailbox="sales").mailbox == "sales"
    for bad in ({"id": "Alice"}, {"id": "-a"}, {"endpoint": "bad endpoint"},
                {"timezone": "Mars/Base"}, {"alternate": "12"}, {"alternate": "sip:bad ep"},
                {"alternate": "user:Bob"}, {"mailbox": "../x"}):
        with pytest.raises(ValidationError):
            User.model_validate({"id": "alice", "endpoint": "alice", **bad})


def test_user_alternate_forms() -> None:
    assert User(id="a", endpoint="a", alternate="+91 98765-43210").alternate == "+919876543210"
    assert User(id="a", endpoint="a", alternate=919876543210).alternate == "919876543210"
    assert User(id="a", endpoint="a", alternate="sip:desk-2").alternate == "sip:desk-2"
    assert User(id="a", endpoint="a", alternate="user:bob").alternate == "user:bob"
    assert User(id="a", endpoint="a", alternate="").alternate is None
    assert User(id="a", endpoint="a", timezone="Asia/Kolkata").timezone == "Asia/Kolkata"
    assert normalise_alternate(" +1 (555) 010-0000 ") == "+15550100000"
    assert normalise_alternate("garbage") is None


def test_sticky_ttl_strings() -> None:
    assert Sticky().ttl == 2592000
    assert [Sticky(ttl=v).ttl for v in ("30d", "12h", "90m", "45s", "600", 7)] == [
        2592000, 43200, 5400, 45, 600, 7]
    with pytest.raises(ValidationError):
        Sticky(ttl="3w")
    with pytest.raises(ValidationError):
        Sticky(ttl=0)
    with pytest.raises(ValueError):
        parse_duration(True)


def test_department_defaults_and_checks() -> None:
    d = Department(id="sales", members=["a", "b"])
    assert (d.strategy, d.sticky, d.ring_time, d.total_timeout, d.rounds) == (
        "serial", None, 20, None, 1)
    assert Department(id="s", members=[], sticky=True).sticky == Sticky()
    assert Department(id="s", members=[], sticky="12h").sticky == Sticky(ttl=43200)
    assert Department(id="s", members=[], sticky=False).sticky is None
    for bad in ({"members": ["a", "a"]}, {"rounds": 0}, {"rounds": 11}, {"ring_time": 0},
                {"strategy": "random"}, {"total_timeout": 0}):
        with pytest.raises(ValidationError):
            Department.model_validate({"id": "s", "members": ["a"], **bad})


def test_failover() -> None:
    fo = Failover()
    assert (fo.number, fo.voicemail, fo.greeting, fo.mailbox) == (None, True, None, None)
    assert Failover(number="+44 20 7946 0000").number == "+442079460000"
    with pytest.raises(ValidationError):
        Failover(number="0800")


def test_outcome_map_disjoint() -> None:
    assert OutcomeMap().busy == [17]
    with pytest.raises(ValidationError, match="cause 21 is in both"):
        OutcomeMap(busy=[17, 21])
    with pytest.raises(ValidationError):
        OutcomeMap(busy=[200])


def test_settings() -> None:
    s = Settings()
    assert (s.timezone, s.forward_to_alternate, s.alternate_caller_id, s.rejected_is_busy,
            s.max_simultaneous) == ("UTC", True, "caller", False, 5)
    with pytest.raises(ValidationError):
        Settings(max_simultaneous=6)
    with pytest.raises(ValidationError):
        Settings(timezone="Nowhere/Land")
    with pytest.raises(ValidationError):
        Settings(alternate_caller_id="trunk")


def test_mapping_loaders_take_id_from_key() -> None:
    users = users_from_mapping({"alice": {"endpoint": "alice"}, "bob": {"endpoint": "bob"}})
    assert users["alice"].id == "alice"
    depts = departments_from_mapping({"sales": {"members": ["alice"]}})
    assert depts["sales"].id == "sales"
    with pytest.raises(ValueError, match="does not match"):
        users_from_mapping({"alice": {"id": "bob", "endpoint": "x"}})


def test_department_problems() -> None:
    users = users_from_mapping({f"u{i}": {"endpoint": f"u{i}"} for i in range(6)})
    d = Department(id="s", strategy="simultaneous", members=[f"u{i}" for i in range(6)])
    assert department_problems(d, users) == [
        ("members", "simultaneous rings at most 5 users; 6 members")]
    d = Department(id="s", members=["u0", "ghost"], ring_time=30, total_timeout=10)
    probs = department_problems(d, users)
    assert ("members[1]", "unknown user 'ghost'") in probs
    assert any(path == "total_timeout" for path, _ in probs)
    assert department_problems(Department(id="s", members=["u0"]), users) == []


def test_department_warnings_and_user_problems() -> None:
    users = users_from_mapping({
        "a": {"endpoint": "a", "receive_calls": False, "alternate": "user:a"},
        "b": {"endpoint": "b", "alternate": "user:zed"},
    })
    d = Department(id="s", members=["a"], failover={"voicemail": False})
    paths = [p for p, _ in department_warnings(d, users)]
    assert paths == ["members", "failover"]
    assert user_problems(users["a"], users) == [
        ("alternate", "a user cannot be their own alternate")]
    assert user_problems(users["b"], users) == [("alternate", "unknown user 'zed'")]
