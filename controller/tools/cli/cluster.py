"""`callctl dispatcher up|down|status` and `callctl cluster`: the scale-out commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from controller.adapters.redis.keys import Keys
from controller.config import ConfigError, Settings
from controller.tools.cli.common import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE


def cmd_dispatcher(args: argparse.Namespace, settings: Settings) -> int:
    from controller.tools import dispatcher
    from controller.tools.stack import StackError

    try:
        ds = dispatcher.load()
    except ConfigError as e:
        print(f"callctl dispatcher: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.action == "up":
            lines = dispatcher.up(ds)
        elif args.action == "down":
            lines = dispatcher.down(ds)
        else:
            st = dispatcher.status(ds)
            if args.json:
                print(json.dumps(st, indent=2))
            else:
                print(f"dispatcher: {'running pid ' + str(st['pid']) if st['pid'] else 'DOWN'}"
                      f" on {st['listen']} (log {st['log']})")
                for uri, flags in st["nodes"].items():
                    state = {"A": "active", "I": "INACTIVE", "T": "trying",
                             "D": "disabled"}.get(flags[:1], flags)
                    print(f"  {uri:<28} {flags}  {state}")
            return EXIT_OK if st["pid"] else EXIT_UNAVAILABLE
    except StackError as e:
        print(f"callctl dispatcher: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    for line in lines:
        print(line)
    return EXIT_OK


async def cluster_status(redis: Any, prefix: str) -> dict[str, Any]:
    """Live controllers (presence), who holds each node, live calls per node."""
    keys = Keys(prefix)
    now_ms = int(time.time() * 1000)
    ids = await redis.zrangebyscore(keys.controllers, now_ms, "+inf")
    controllers: dict[str, Any] = {}
    for cid in ids:
        raw = await redis.get(keys.controller(cid))
        if raw:
            controllers[cid] = json.loads(raw)
    nodes: dict[str, dict[str, Any]] = {}
    async for key in redis.scan_iter(match=keys.node_lease("*")):
        name = key.removeprefix(keys.node_lease(""))
        nodes.setdefault(name, {})["owner"] = await redis.get(key)
        nodes[name]["lease_ms"] = await redis.pttl(key)
    async for key in redis.scan_iter(match=keys.node_calls("*")):
        name = key.removeprefix(keys.node_calls(""))
        nodes.setdefault(name, {})["calls"] = await redis.scard(key)
    for info in controllers.values():
        for name in info.get("nodes", ()):
            nodes.setdefault(name, {})
    for n in nodes.values():
        n.setdefault("owner", None)
        n.setdefault("calls", 0)
    return {"controllers": controllers, "nodes": dict(sorted(nodes.items()))}


def cmd_cluster(args: argparse.Namespace, settings: Settings) -> int:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    async def main() -> int:
        r = aioredis.from_url(settings.redis_url, decode_responses=True, socket_timeout=2)
        try:
            st = await cluster_status(r, settings.redis_prefix)
        except (RedisError, OSError) as e:
            print(f"callctl: redis: {type(e).__name__}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        finally:
            await r.aclose()
        if args.json:
            print(json.dumps(st, indent=2))
            return EXIT_OK
        print("controllers:" if st["controllers"] else "controllers: none alive")
        for cid, info in st["controllers"].items():
            print(f"  {cid:<20} nodes {','.join(info.get('nodes', []))}  primary "
                  f"{','.join(info.get('primary', []))}  holds {','.join(info.get('held', []))}")
        print("nodes:")
        for name, n in st["nodes"].items():
            owner = n["owner"] or "NOBODY (calls take the outage path)"
            print(f"  {name:<20} held by {owner}  live calls {n['calls']}")
        return EXIT_OK

    return asyncio.run(main())


def add_cluster_commands(sub: Any) -> None:
    s = sub.add_parser("dispatcher", help="Kamailio SIP dispatcher in front of the nodes")
    s.add_argument("action", choices=["up", "down", "status"])
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_dispatcher)

    s = sub.add_parser("cluster", help="controllers, who holds which node, calls per node")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_cluster)
