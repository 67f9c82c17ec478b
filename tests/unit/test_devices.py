"""Issue 14 item 4, pure parts: a phone's device state for `callctl users`; registered
phones are qualified."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import load_settings
from controller.core.devices import device_view
from controller.tools import stack


@pytest.mark.parametrize(("row", "state", "in_use"), [
    ({"ObjectName": "p", "Contacts": "p/sip:p@1.2.3.4:5060,", "DeviceState": "Not in use"},
     "reachable", False),
    ({"ObjectName": "p", "Contacts": "p/sip:p@1.2.3.4:5060,", "DeviceState": "In use"},
     "reachable", True),
    ({"ObjectName": "p", "Contacts": "p/sip:p@1.2.3.4:5060,", "DeviceState": "Unavailable"},
     "unreachable", False),
    ({"ObjectName": "p", "Contacts": "", "DeviceState": "Unavailable"}, "unregistered", False),
    (None, "unknown", False),
])
def test_device_state(row: dict[str, str] | None, state: str, in_use: bool) -> None:
    view = device_view(row)
    assert (view["state"], view["in_use"]) == (state, in_use)
    assert view["contact"] == ("sip:p@1.2.3.4:5060" if row and row["Contacts"] else None)


def test_registered_phones_are_qualified(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCTL_RUN_DIR", str(tmp_path / "run"))
    p = stack.render(load_settings())
    text = (p.etc / "pjsip-secrets.conf").read_text()
    for n in (1, 2, 3):
        aor = text.split(f"[phone{n}]\ntype = aor\n", 1)[1].split("\n\n", 1)[0]
        assert "qualify_frequency = 30" in aor and "qualify_timeout = 3.0" in aor, aor
