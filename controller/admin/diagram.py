"""The flow diagram's data: each published flow as a graph (pure), and where live calls are.

``flow_graphs(flowset)`` -> ``{"flows": [{"id", "description", "dids", "entry", "nodes",
"edges"}]}``. Nodes: ``{"id", "type", "label", "detail"}`` (``detail`` lines: the department
and its strategy and members, the user, the menu prompt, ...). Synthetic nodes: ``failover``
(a ``fallback: failover``: the department's / user's failover number, then voicemail),
``hangup:<node>`` is not drawn (a missing branch just ends the edge list) and
``flow:<id>`` (a goto into another flow). Edges: ``{"from", "to", "label"}``, one per pair
of nodes: the menu keys (``1``..``9``, ``0``) and branch names (``next``, ``fallback``,
``no_input``, ``open``...) leading there, joined with ", ".
The page (``diagram.html``) lays the graph out itself.
"""

from __future__ import annotations

from typing import Any

from controller.core.flows.schema import Flow, FlowSet
from controller.core.nodes.base import FAILOVER
from controller.core.nodes.goto import GotoNode

STRATEGY_NAMES = {"serial": "serial", "simultaneous": "simultaneous",
                  "balanced": "balanced round-robin", "longest_idle": "longest idle"}


def _edge_label(path: tuple[Any, ...]) -> str:
    head = str(path[0])
    if head == "options":
        return str(path[1])
    if head == "operator":
        return "0"
    if head == "on_status":
        return f"HTTP {path[1]}"
    if head == "match":
        return f"{path[1]}={path[2]}"
    return head


def _failover_detail(fo: Any, mailbox: str) -> list[str]:
    lines = []
    if fo is not None and fo.number:
        lines.append(f"ring {fo.number}")
    if fo is None or fo.voicemail:
        lines.append(f"voicemail: {(fo.mailbox if fo is not None else None) or mailbox}")
    elif not lines:
        lines.append("hang up")
    return lines


def _node_view(node: Any, fs: FlowSet) -> tuple[str, list[str], tuple[str, list[str]] | None]:
    """(label, detail lines, failover (label, detail) if it falls back to failover)."""
    t = node.type
    detail: list[str] = []
    failover = None
    if t == "department":
        dept = fs.departments.get(node.department)
        if dept is None:
            return f"department {node.department}", ["(unknown)"], None
        strategy = STRATEGY_NAMES.get(dept.strategy, dept.strategy)
        detail.append(f"{dept.name or dept.id}: {strategy}" + (" + sticky" if dept.sticky
                                                                    else ""))
        detail.append("rings " + ", ".join(dept.members))
        if node.fallback == FAILOVER:
            failover = (f"failover ({dept.id})",
                        _failover_detail(dept.failover, dept.mailbox or dept.id))
        return f"department {dept.id}", detail, failover
    if t == "extension":
        user = fs.users.get(node.user)
        detail.append(f"{user.name or user.id} ({user.endpoint})" if user else "(unknown)")
        detail.append(f"ring {node.ring_time} s")
        if node.fallback == FAILOVER:
            failover = (f"voicemail ({node.user})",
                        [f"mailbox: {(user.mailbox if user else None) or node.user}"])
        return f"extension {node.user}", detail, failover
    if t == "menu":
        detail.append("prompt: " + ", ".join(node.prompt))
        return "menu", detail, None
    if t == "language":
        detail.append(", ".join(f"{k}: {c.language}" for k, c in node.options.items()))
        return "language", detail, None
    if t == "message":
        detail.append("play: " + ", ".join(node.prompt))
        return "message", detail, None
    if t == "voicemail":
        detail.append(f"mailbox: {node.resolve_mailbox(fs)}")
        return "voicemail", detail, None
    if t == "time":
        detail.append(f"{len(node.hours)} window(s), {len(node.holidays)} holiday(s)")
        return "time", detail, None
    if t == "input":
        detail.append(f"{node.digits} digit(s) -> {node.variable}")
        if node.post is not None:
            detail.append("POST " + node.post.url.split("?", 1)[0])
        return "input", detail, None
    if t == "goto":
        return "goto", [f"flow {node.flow}" if node.flow else f"node {node.node}"], None
    if t == "hangup":
        return "hangup", [f"cause {node.cause}"], None
    return t, detail, None


def flow_graph(flow: Flow, fs: FlowSet) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    extra: dict[str, dict[str, Any]] = {}
    for nid, node in flow.nodes.items():
        label, detail, failover = _node_view(node, fs)
        nodes.append({"id": nid, "type": node.type, "label": label, "detail": detail})
        by_target: dict[str, list[str]] = {}  # one edge per target, its labels joined
        for path, target in node.targets():
            labels = by_target.setdefault(target, [])
            lab = _edge_label(path)
            if lab not in labels:
                labels.append(lab)
        edges.extend({"from": nid, "to": t, "label": ", ".join(labs)}
                     for t, labs in by_target.items())
        if failover is not None:
            fid = f"failover:{nid}"
            extra[fid] = {"id": fid, "type": "failover", "label": failover[0],
                          "detail": failover[1]}
            edges.append({"from": nid, "to": fid, "label": "fallback"})
        if isinstance(node, GotoNode) and node.flow is not None:
            fid = f"flow:{node.flow}"
            extra[fid] = {"id": fid, "type": "flow", "label": f"flow {node.flow}",
                          "detail": [f"at {node.node}" if node.node else "entry"]}
            edges.append({"from": nid, "to": fid, "label": "goto"})
    nodes.extend(extra.values())
    return {"id": flow.id, "description": flow.description, "dids": list(flow.dids),
            "entry": flow.entry, "nodes": nodes, "edges": edges}


def flow_graphs(fs: FlowSet | None, version: int | None = None) -> dict[str, Any]:
    if fs is None:
        return {"version": None, "flows": []}
    return {"version": version, "flows": [flow_graph(f, fs) for f in fs.flows.values()]}


def live_positions(calls: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """``{flow id: {node id: number of live calls there}}`` from live call rows having
    ``flow`` and ``node``."""
    out: dict[str, dict[str, int]] = {}
    for c in calls:
        flow, node = c.get("flow"), c.get("node")
        if flow and node:
            per = out.setdefault(str(flow), {})
            per[str(node)] = per.get(str(node), 0) + 1
    return out
