"""Micro-benchmark of ARI event parsing: prints events/s for parse_event and json.loads+parse.

    .venv/bin/python bench/bench_events.py [n]
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from controller.adapters.ari.parse import channel_id_of, parse_event

CHANNEL = {
    "id": "1709287200.42", "name": "PJSIP/pstn-0000002a", "state": "Up",
    "protocol_id": "a84d3ff6-5d0e@10.0.0.1",
    "caller": {"name": "Alice", "number": "+15559870000"},
    "connected": {"name": "", "number": ""}, "accountcode": "",
    "dialplan": {"context": "from-pstn", "exten": "+15551230000", "priority": 2,
                 "app_name": "Stasis", "app_data": "callctl,inbound,+15551230000"},
    "creationtime": "2024-03-01T10:00:00.100+0000", "language": "en",
}
TS = "2024-03-01T10:00:00.123+0000"


def _ev(t: str, **kw: Any) -> dict[str, Any]:
    return {"type": t, "timestamp": TS, "application": "callctl", **kw}


# Roughly the mix of one IVR call: start, state, DTMF, playbacks, varsets, hangup, end.
MIX: list[dict[str, Any]] = [
    _ev("StasisStart", args=["inbound", "+15551230000"], channel=CHANNEL),
    _ev("ChannelStateChange", channel=CHANNEL),
    _ev("ChannelVarset", variable="STASISSTATUS", value="", channel=CHANNEL),
    _ev("PlaybackStarted", playback={"id": "1709287200.42-P1", "media_uri": "sound:welcome",
                                     "target_uri": "channel:1709287200.42", "state": "playing"}),
    _ev("ChannelDtmfReceived", digit="1", duration_ms=120, channel=CHANNEL),
    _ev("PlaybackFinished", playback={"id": "1709287200.42-P1", "media_uri": "sound:welcome",
                                      "target_uri": "channel:1709287200.42", "state": "done"}),
    _ev("ChannelHangupRequest", cause=16, channel=CHANNEL),
    _ev("ChannelDestroyed", cause=16, cause_txt="Normal Clearing", channel=CHANNEL),
    _ev("StasisEnd", channel=CHANNEL),
    _ev("ChannelTalkingStarted", channel=CHANNEL),  # unknown to us
]


def bench(n: int) -> None:
    raws = MIX * (n // len(MIX))
    texts = [json.dumps(r) for r in raws]
    count = len(raws)

    t0 = time.perf_counter()
    for r in raws:
        channel_id_of(parse_event(r))
    t_parse = time.perf_counter() - t0

    t0 = time.perf_counter()
    loads = json.loads
    for s in texts:
        channel_id_of(parse_event(loads(s)))
    t_full = time.perf_counter() - t0

    print(f"events:                 {count}")
    print(f"parse_event:            {count / t_parse:,.0f} events/s "
          f"({t_parse / count * 1e6:.2f} us/event)")
    print(f"json.loads+parse_event: {count / t_full:,.0f} events/s "
          f"({t_full / count * 1e6:.2f} us/event)")


if __name__ == "__main__":
    bench(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
