"""One place for Redis key names (controller.adapters.redis.keys), and README's "Redis keys"
table lists exactly the keys it builds."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from controller.adapters.redis.keys import DEFAULT_PREFIX, Keys

README = Path(__file__).resolve().parents[2] / "README.md"
GENERIC = {"cursor", "stats"}
"""Builders for a name given by the caller (``rr:<dept>`` from the flow, ``agent:<user>``)."""


def built() -> set[str]:
    """Every key ``Keys("")`` builds, with ``X`` for each parameter."""
    k = Keys("")
    out = {v for n, v in vars(k).items() if n != "prefix" and isinstance(v, str)}
    out.discard(k.flows_v)  # the start of flows:v:<n>, built whole by flow()
    for name, fn in inspect.getmembers(k, inspect.ismethod):
        if name.startswith("_") or name in GENERIC:
            continue
        params = inspect.signature(fn).parameters
        out.add(fn(*["X"] * len(params)))
    return out


def documented() -> set[str]:
    text = README.read_text()
    table = text.split("## Redis keys", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            names.update(re.sub(r"<[^>]+>", "X", n) for n in re.findall(r"`([^`]+)`", first))
    return names


def test_the_readme_table_lists_every_key_built_and_no_other() -> None:
    keys, table = built(), documented()
    assert not keys - table, f"built but not in README's Redis keys table: {sorted(keys - table)}"
    assert not table - keys, f"in README's table but not built by Keys: {sorted(table - keys)}"


def test_keys_are_under_the_prefix() -> None:
    k = Keys("t:")
    assert k.call("c1") == "t:call:c1"
    assert k.call_lease("c1") == "t:lease:call:c1"
    assert k.node_calls("a") == "t:calls:node:a"
    assert k.sticky("sales", "+15551234") == "t:sticky:sales:+15551234"
    assert k.rr("sales") == k.cursor("rr:sales") == "t:rr:sales"
    assert k.agent_stats("alice") == k.stats("agent:alice") == "t:stats:agent:alice"
    assert k.flow(3) == "t:flows:v:3"
    assert Keys().calllog == f"{DEFAULT_PREFIX}calllog"
