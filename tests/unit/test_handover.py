"""Handover on stop and give-back: the pure decisions (controller.cluster.policy) and the setting
(CALLCTL_ON_STOP). The behaviour itself is tested on the real stack (test_resilience,
test_scaleout)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from controller.cluster.policy import (
    answered_legs,
    bridged,
    give_back,
    give_back_now,
    may_hand_over,
    missing_from_bridge,
)
from controller.config import ConfigError, load_settings
from controller.core.model import DialTarget
from controller.shell.legs import target_from_json, target_json

# ------------------------------------------------------------------ CALLCTL_ON_STOP

def test_on_stop_hands_calls_over_by_default() -> None:
    assert load_settings({}).on_stop == "handover"
    assert load_settings({"CALLCTL_ON_STOP": ""}).on_stop == "handover"


@pytest.mark.parametrize("raw", ["hangup", "HANGUP", " hangup "])
def test_on_stop_hangup_keeps_tearing_calls_down(raw: str) -> None:
    assert load_settings({"CALLCTL_ON_STOP": raw}).on_stop == "hangup"


@pytest.mark.parametrize("raw", ["drop", "hand-over", "1"])
def test_bad_on_stop_names_the_variable_and_the_choices(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"CALLCTL_ON_STOP has value .*handover or hangup"):
        load_settings({"CALLCTL_ON_STOP": raw})


# ------------------------------------------------------------------ which calls, which state

def call(result: str = "unknown", leg: str | None = None, answered_by: str | None = None,
         abandoned: bool = False, ending: bool = False) -> Any:
    return SimpleNamespace(result=result, connected_leg=leg, abandoned=abandoned,
                           ending=ending, ctx=SimpleNamespace(answered_by=answered_by))


def test_a_call_counts_as_connected_once_its_answering_leg_is_claimed() -> None:
    assert bridged(call("connected", "x-L1", "alice"))
    # bridged, the engine not yet back with its Stop("connected")
    assert bridged(call("unknown", "x-L1", "alice"))
    # claimed (its connected state written), the caller not answered nor bridged yet: the
    # adopter finishes the connect, it does not run the flow again
    assert bridged(call("unknown", "x-L1", None))
    assert not bridged(call())  # a menu, ringing, or a leg answered but not claimed yet


# ------------------------------------------------------------------ finishing a connect

APP = "callctl"


def chan(state: str = "Up", app: str = "Stasis", data: str = "callctl,leg,c1") -> Any:
    return {"state": state, "dialplan": {"app_name": app, "app_data": data}}


def test_an_adopter_connects_the_legs_that_answered_and_wait_in_the_app_oldest_first() -> None:
    channels = {
        "c1": chan(data="callctl,inbound,+1555"),
        "c1-L10": chan(),
        "c1-L2": chan(),
        "c1-L3": chan("Ringing"),  # still ringing
        "c1-L4": chan(app="AppDial"),  # up, but not in the app (Stasis refused it)
        "c1-L5": chan(data="other,leg,c1"),  # another application's
        "c2-L1": chan(data="callctl,leg,c2"),  # another call's
        "c1-Lx": chan(),
    }
    assert answered_legs("c1", APP, channels) == ["c1-L2", "c1-L10"]
    assert answered_legs("c3", APP, channels) == []


def test_what_a_half_done_connect_still_needs_in_the_bridge() -> None:
    assert missing_from_bridge(("c1", "c1-L1"), None) == ["c1", "c1-L1"]  # no bridge yet
    assert missing_from_bridge(("c1", "c1-L1"), {"channels": []}) == ["c1", "c1-L1"]
    assert missing_from_bridge(("c1", "c1-L1"), {"channels": ["c1-L1"]}) == ["c1"]
    assert missing_from_bridge(("c1", "c1-L1"), {"channels": ["c1", "c1-L1"]}) == []


def test_a_leg_s_target_survives_its_channel_variable_and_bad_values_are_refused() -> None:
    for t in (DialTarget("sip", "agent1", user="alice"),
              DialTarget("pstn", "+15557770001", user="bob", role="alternate"),
              DialTarget("sip", "agent9")):
        assert target_from_json(target_json(t)) == t
    for raw in (None, "", "x", "[]", '{"kind": "sip"}', '{"kind": "tel", "address": "a"}',
                '{"kind": "sip", "address": "a;b"}', '{"kind": "sip", "address": "a", '
                '"role": "boss"}', '{"kind": "sip", "address": "a", "user": 3}'):
        assert target_from_json(raw) is None, raw


def test_calls_tearing_down_or_already_let_go_of_are_not_handed_over() -> None:
    assert may_hand_over(call())
    assert may_hand_over(call("connected", "x-L1", "alice"))
    assert not may_hand_over(call("completed", "x-L1", "alice", ending=True))
    assert not may_hand_over(call(abandoned=True))


# ------------------------------------------------------------------ give-back

PEERS = {
    "c1": {"token": "c1/aa", "primary": ["a"]},
    "c2": {"token": "c2/bb", "primary": ["b"]},
}


def test_a_stand_in_gives_a_node_back_to_its_live_primary_after_a_lease_time() -> None:
    seen = {"c2/bb": 100.0}
    assert give_back(["a", "b"], {"a"}, PEERS, seen, "c1", now=102.0, settle_s=2.0) == {
        "b": "c2"}
    # seen for less than a lease time: not yet (a peer dying as it starts gets nothing)
    assert give_back(["a", "b"], {"a"}, PEERS, seen, "c1", now=101.9, settle_s=2.0) == {}


def test_primary_nodes_and_nodes_nobody_claims_stay() -> None:
    seen = {"c2/bb": 0.0, "c1/aa": 0.0}
    assert give_back(["a"], {"a"}, PEERS, seen, "c1", now=10, settle_s=2) == {}
    # node c is nobody's primary: the stand-in keeps it
    assert give_back(["c"], {"a"}, PEERS, seen, "c1", now=10, settle_s=2) == {}
    # both list b as primary (a misconfiguration): the holder keeps it, no ping-pong
    assert give_back(["b"], {"a", "b"}, PEERS, seen, "c1", now=10, settle_s=2) == {}


def test_our_own_presence_and_a_peer_not_yet_seen_do_not_count() -> None:
    me = {"c1": {"token": "c1/new", "primary": ["b"]}}  # our own id lists b as primary
    assert give_back(["b"], {"a"}, me, {"c1/new": 0.0}, "c1", now=10, settle_s=2) == {}
    assert give_back(["b"], {"a"}, PEERS, {}, "c1", now=10, settle_s=2) == {}


def test_a_restarted_primary_settles_again_under_its_new_token() -> None:
    peers = {"c2": {"token": "c2/new", "primary": ["b"]}}
    seen = {"c2/old": 0.0, "c2/new": 9.0}
    assert give_back(["b"], {"a"}, peers, seen, "c1", now=10, settle_s=2) == {}
    assert give_back(["b"], {"a"}, peers, seen, "c1", now=11, settle_s=2) == {"b": "c2"}


def test_each_node_goes_to_its_own_primary() -> None:
    peers = {**PEERS, "c3": {"token": "c3/cc", "primary": ["c", "d"]}}
    seen = {"c2/bb": 0.0, "c3/cc": 0.0}
    assert give_back(["a", "b", "c", "e"], {"a"}, peers, seen, "c1", now=5, settle_s=2) == {
        "b": "c2", "c": "c3"}


def test_give_back_waits_for_calls_in_their_flow_up_to_a_limit() -> None:
    assert give_back_now(0, 100.0, now=100.0)  # only bridged calls (or none): at once
    assert not give_back_now(2, 100.0, now=159.9, max_wait=60)  # a menu or ringing: wait
    assert give_back_now(2, 100.0, now=160.0, max_wait=60)  # not forever
