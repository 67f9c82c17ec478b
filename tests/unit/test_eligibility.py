from __future__ import annotations

from datetime import UTC, datetime

from controller.core.eligibility import (
    BUSY,
    NO_ENDPOINT,
    OPTED_OUT,
    OUTSIDE_WINDOW,
    check,
    effective_alternate,
)
from controller.core.flows.directory import User, Window
from controller.core.flows.settings import Settings
from controller.core.model import UserFacts

S = Settings()
MON_NOON = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)  # Monday 12:00 UTC
SAT_NOON = datetime(2025, 6, 7, 12, 0, tzinfo=UTC)
OFFICE = [Window(days="mon-fri", start="09:00", end="17:00")]


def user(**kw: object) -> User:
    return User.model_validate({"id": "alice", "endpoint": "alice", **kw})


def test_eligible_by_default() -> None:
    e = check(user(), None, MON_NOON, S)
    assert (e.ok, e.reason) == (True, None)


def test_opt_out_beats_availability_and_busy() -> None:
    u = user(receive_calls=False, availability=OFFICE)
    assert check(u, UserFacts(busy=True), SAT_NOON, S).reason == OPTED_OUT
    # runtime override opts out a user the flow has opted in
    assert check(user(), UserFacts(receive_calls=False, busy=True), MON_NOON, S).reason == (
        OPTED_OUT)
    # and opts back in a user the flow opted out
    assert check(user(receive_calls=False), UserFacts(receive_calls=True), MON_NOON, S).ok


def test_window_beats_busy() -> None:
    u = user(availability=OFFICE)
    assert check(u, UserFacts(busy=True), SAT_NOON, S).reason == OUTSIDE_WINDOW
    assert check(u, UserFacts(busy=True), MON_NOON, S).reason == BUSY
    assert check(u, UserFacts(), MON_NOON, S).ok


def test_user_timezone_and_settings_timezone() -> None:
    # 12:00 UTC Monday = 17:30 in Kolkata: outside a 09:00-17:00 window there
    u = user(availability=OFFICE, timezone="Asia/Kolkata")
    assert check(u, None, MON_NOON, S).reason == OUTSIDE_WINDOW
    # 12:00 UTC = 08:00 in New York (EDT): not yet open
    u = user(availability=OFFICE)
    assert check(u, None, MON_NOON, Settings(timezone="America/New_York")).reason == (
        OUTSIDE_WINDOW)
    assert check(u, None, datetime(2025, 6, 2, 14, 0, tzinfo=UTC),
                 Settings(timezone="America/New_York")).ok


def test_overnight_window_in_zone() -> None:
    night = [Window(days="fri", start="22:00", end="06:00")]
    u = user(availability=night, timezone="Europe/Paris")  # UTC+2 in June
    assert check(u, None, datetime(2025, 6, 6, 20, 30, tzinfo=UTC), S).ok  # Fri 22:30
    assert check(u, None, datetime(2025, 6, 7, 3, 0, tzinfo=UTC), S).ok  # Sat 05:00
    assert not check(u, None, datetime(2025, 6, 7, 4, 0, tzinfo=UTC), S).ok  # Sat 06:00
    assert not check(u, None, datetime(2025, 6, 6, 19, 0, tzinfo=UTC), S).ok  # Fri 21:00


def test_availability_override() -> None:
    u = user(availability=OFFICE)
    # runtime windows (as JSON dicts from the store) replace the flow's
    weekend = ({"days": ["sat", "sun"], "start": "10:00", "end": "14:00"},)
    assert check(u, UserFacts(availability=weekend), SAT_NOON, S).ok
    assert not check(u, UserFacts(availability=weekend), MON_NOON, S).ok
    # () = always available; garbage = ignored (the flow's windows apply)
    assert check(u, UserFacts(availability=()), SAT_NOON, S).ok
    assert not check(u, UserFacts(availability=({"days": "x"},)), SAT_NOON, S).ok


def test_naive_datetime_is_utc() -> None:
    u = user(availability=OFFICE, timezone="Asia/Kolkata")
    assert check(u, None, datetime(2025, 6, 2, 6, 0), S).ok  # 11:30 IST


def test_no_endpoint() -> None:
    u = User.model_construct(id="x", endpoint="", receive_calls=True, availability=[],
                             timezone=None, alternate=None, mailbox="x")
    assert check(u, None, MON_NOON, S).reason == NO_ENDPOINT


def test_effective_alternate() -> None:
    u = user(alternate="+15550100000")
    assert effective_alternate(u, None) == "+15550100000"
    assert effective_alternate(u, UserFacts()) == "+15550100000"
    assert effective_alternate(u, UserFacts(alternate="sip:desk")) == "sip:desk"
    assert effective_alternate(u, UserFacts(alternate="+1 555 010 9999")) == "+15550109999"
    assert effective_alternate(u, UserFacts(alternate="")) is None
    assert effective_alternate(u, UserFacts(alternate="not a number")) is None
