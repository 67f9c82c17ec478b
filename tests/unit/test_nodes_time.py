"""time node: open / closed / holiday with an injected clock and time zones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from drive import drive, make_ctx, one_flow

from controller.core.model import Continue
from controller.core.nodes import timecond
from controller.core.nodes.timecond import TimeNode

NODE = TimeNode.model_validate({
    "id": "hours", "type": "time", "timezone": "America/New_York",
    "hours": [{"days": "mon-fri", "start": "09:00", "end": "17:00"},
              {"days": "sat", "start": "22:00", "end": "02:00"}],
    "holidays": [{"date": "2025-12-25"}, {"from": "2025-12-31", "to": "2026-01-01"}],
    "open": "o", "closed": "c",
})


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2025, 6, 2, 13, 0, tzinfo=UTC), "open"),      # Mon 09:00 EDT
        (datetime(2025, 6, 2, 12, 59, tzinfo=UTC), "closed"),   # Mon 08:59 EDT
        (datetime(2025, 6, 2, 21, 0, tzinfo=UTC), "closed"),    # Mon 17:00 EDT (end excluded)
        (datetime(2025, 6, 8, 5, 30, tzinfo=UTC), "open"),      # Sun 01:30 EDT, Sat window
        (datetime(2025, 12, 25, 15, 0, tzinfo=UTC), "holiday"),  # Thu, Christmas
        (datetime(2026, 1, 1, 4, 59, tzinfo=UTC), "holiday"),   # Dec 31 23:59 EST
        (datetime(2026, 1, 2, 15, 0, tzinfo=UTC), "open"),      # Fri after the range
    ],
)
def test_decide(utc: datetime, expected: str) -> None:
    ctx = make_ctx(one_flow({"x": {"type": "hangup"}}), now=utc)
    run = drive(timecond.run(NODE, ctx))
    assert run.result == Continue(expected)
    assert run.commands == []
    assert ctx.trace[-1].data["result"] == expected


def test_default_time_zone_is_settings() -> None:
    node = NODE.model_copy(update={"timezone": None})
    fs = one_flow({"x": {"type": "hangup"}}, settings={"timezone": "Asia/Kolkata"})
    # 04:00 UTC is 09:30 IST on a Monday
    ctx = make_ctx(fs, now=datetime(2025, 6, 2, 4, 0, tzinfo=UTC))
    assert drive(timecond.run(node, ctx)).result == Continue("open")


def test_naive_clock_is_utc() -> None:
    result, local = timecond.decide(NODE, datetime(2025, 6, 2, 13, 0))
    assert result == "open" and local.hour == 9


def test_holiday_defaults_to_closed() -> None:
    assert NODE.branch("holiday") == "c"
    with_holiday = NODE.model_copy(update={"holiday": "h"})
    assert with_holiday.branch("holiday") == "h"
