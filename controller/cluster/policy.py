"""The cluster's pure decisions: which nodes a controller serves, whether a call is bridged
or may be handed over, when a stand-in gives a node back."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from controller.config import AriNode, Settings

log = logging.getLogger("callctl.cluster")

def node_specs(settings: Settings) -> tuple[AriNode, ...]:
    """The nodes a controller serves: CALLCTL_ARI_URLS, or the one at CALLCTL_ARI_URL."""
    if settings.ari_nodes:
        return settings.ari_nodes
    return (AriNode(settings.node_name, settings.ari_url, settings.ari_user,
                    settings.ari_password, settings.ami_port, settings.ami_secret,
                    ami_host=settings.ami_host),)


def bridged(call: Any) -> bool:
    """The call is connected to someone (its answering leg claimed: its ``call:<id>`` says
    so, ``Cluster.claim``; perhaps not bridged yet): an adopter supervises it, finishing the
    connect if need be. Else it is still in its flow."""
    return call.result == "connected" or call.connected_leg is not None


SETTLE_S = 2.0
"""How long a handover waits for calls with an answering leg to finish connecting."""


def answered_legs(cid: str, app: str, channels: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The legs of call ``cid`` that answered and wait in our Stasis app, oldest first."""
    found: list[tuple[int, str]] = []
    for ch_id, ch in channels.items():
        head, sep, seq = ch_id.rpartition("-L")
        if head != cid or not sep or not seq.isdigit() or ch.get("state") != "Up":
            continue
        dp = ch.get("dialplan") or {}
        if dp.get("app_name") == "Stasis" and \
                str(dp.get("app_data") or "").startswith(f"{app},leg,{cid}"):
            found.append((int(seq), ch_id))
    return [c for _, c in sorted(found)]


def missing_from_bridge(channels: Collection[str], bridge: Mapping[str, Any] | None) -> list[str]:
    """Which of ``channels`` are not in ``bridge`` (all of them if it does not exist)."""
    inside = set((bridge or {}).get("channels") or ())
    return [c for c in channels if c not in inside]


def may_hand_over(call: Any) -> bool:
    """A live call we drive that another controller may take: not one we already let go of
    (``abandoned``), nor one tearing down (``ending``: it finishes here, then is logged)."""
    return not call.abandoned and not call.ending


def give_back(held: Iterable[str], primary: Collection[str],
              peers: Mapping[str, Mapping[str, Any]], seen: Mapping[str, float], me: str,
              now: float, settle_s: float) -> dict[str, str]:
    """The nodes we hold as a stand-in that go back to their primary controller:
    ``{node: peer id}``. A node goes back when it is not one of our ``primary`` nodes and a
    live peer (``peers``: presence by controller id) lists it as primary, once that peer's
    current life (its presence token) has been seen alive for ``settle_s`` (``seen``: token
    -> first seen, same clock as ``now``), so a peer that dies as it starts gets nothing."""
    out: dict[str, str] = {}
    for node in sorted(held):
        if node in primary:
            continue
        for cid in sorted(peers):
            p = peers[cid]
            if cid == me or node not in (p.get("primary") or ()):
                continue
            since = seen.get(str(p.get("token")))
            if since is not None and now - since >= settle_s:
                out[node] = cid
                break
    return out


GIVE_BACK_WAIT_S = 60.0
"""How long a give-back waits for the node's calls still in their flow (a menu, ringing) to
be bridged or to end: handed over, those would run their flow again at the primary."""


def give_back_now(mid_flow: int, waiting_since: float | None, now: float,
                  max_wait: float = GIVE_BACK_WAIT_S) -> bool:
    """Whether a node due to go back goes now: when none of its calls is in its flow (bridged
    calls are handed over seamlessly), or once it has waited ``max_wait`` for them."""
    return mid_flow == 0 or (waiting_since is not None and now - waiting_since >= max_wait)

