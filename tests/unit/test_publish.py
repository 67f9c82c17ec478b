"""Publishing versions to a real (throw-away) redis-server."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redisproc import RedisServer, free_port

from controller.adapters.redis import flowstore as pub
from controller.core.flows.loader import load, load_text
from controller.tools import flowcmds as commands

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "flows" / "examples"
PREFIX = "t:"
RELATIVE_EXAMPLES = os.path.relpath(EXAMPLES)

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    srv = RedisServer()  # with a password, as the stack's
    srv.start()
    try:
        yield srv.url
    finally:
        srv.cleanup()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Any]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


async def test_publish_and_load_live(redis: Any) -> None:
    result = load([EXAMPLES])
    assert await pub.load_live(redis, prefix=PREFIX) is None
    pubsub = redis.pubsub()
    await pubsub.subscribe(f"{PREFIX}flows:published")
    await pubsub.get_message(timeout=1)  # subscribe confirmation

    version = await pub.publish(redis, result, prefix=PREFIX, now=1700000000.0)
    assert version == 1
    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    assert msg is not None and msg["data"] == "1"
    await pubsub.aclose()

    live = await pub.load_live(redis, prefix=PREFIX)
    assert live is not None and live[0] == 1
    assert live[1] == result.flowset
    assert live[1].flow_for_did("+15550101").id == "main"
    assert await pub.load_live(redis, prefix=PREFIX, if_not=1) is None

    doc = json.loads(await redis.get(f"{PREFIX}flows:v:1"))
    assert doc["version"] == 1 and doc["published_at"] == 1700000000.0
    assert set(doc["source_files"]) == {str(EXAMPLES / n) for n in
                                        ("direct.yaml", "directory.yaml", "main.yaml")}
    assert await redis.get(f"{PREFIX}flows:live") == "1"


async def test_rejected_publish_changes_nothing(redis: Any) -> None:
    await pub.publish(redis, load([EXAMPLES]), prefix=PREFIX)
    bad = load_text("flows:\n  x: {entry: nowhere}\n")
    with pytest.raises(pub.PublishRejected) as exc:
        await pub.publish(redis, bad, prefix=PREFIX)
    assert exc.value.problems == bad.errors
    assert await redis.get(f"{PREFIX}flows:version") == "1"
    assert await redis.get(f"{PREFIX}flows:live") == "1"


async def test_versions_and_rollback(redis: Any) -> None:
    first = load([EXAMPLES])
    second = load_text("flows:\n  only:\n    dids: ['+15550100']\n    entry: h\n"
                       "    nodes: {h: {type: hangup}}\n", "only.yaml")
    third = load_text("flows:\n  only:\n    dids: ['+15550100']\n    entry: h\n"
                      "    nodes: {h: {type: hangup, cause: 17}}\n", "only.yaml")
    assert await pub.publish(redis, first, prefix=PREFIX) == 1
    assert await pub.publish(redis, second, prefix=PREFIX) == 2
    assert await pub.publish(redis, third, prefix=PREFIX) == 3
    rows = await pub.list_versions(redis, prefix=PREFIX)
    assert [(r.version, r.live, r.flows) for r in rows] == [(1, False, 2), (2, False, 1),
                                                             (3, True, 1)]
    assert rows[1].files == ("only.yaml",)

    assert await pub.rollback(redis, prefix=PREFIX) == 2
    assert await pub.rollback(redis, prefix=PREFIX) == 1
    live = await pub.load_live(redis, prefix=PREFIX)
    assert live is not None and live[0] == 1 and "main" in live[1].flows
    with pytest.raises(pub.RollbackError, match="no version older"):
        await pub.rollback(redis, prefix=PREFIX)
    assert await pub.rollback(redis, 3, prefix=PREFIX) == 3
    with pytest.raises(pub.RollbackError, match="no flow version 9"):
        await pub.rollback(redis, 9, prefix=PREFIX)
    assert await redis.get(f"{PREFIX}flows:live") == "3"


async def test_rollback_with_nothing_published(redis: Any) -> None:
    with pytest.raises(pub.RollbackError, match="nothing is published"):
        await pub.rollback(redis, prefix=PREFIX)


async def test_unloadable_live_version_is_skipped(redis: Any) -> None:
    await pub.publish(redis, load([EXAMPLES]), prefix=PREFIX)
    await redis.set(f"{PREFIX}flows:v:1", "{not json")
    assert await pub.load_live(redis, prefix=PREFIX) is None
    with pytest.raises(pub.RollbackError, match="cannot be loaded"):
        await pub.rollback(redis, 1, prefix=PREFIX)


def hangup_flow(cause: int) -> Any:
    return load_text("flows:\n  only:\n    dids: ['+15550100']\n    entry: h\n"
                     f"    nodes: {{h: {{type: hangup, cause: {cause}}}}}\n", "only.yaml")


async def test_concurrent_publishes_get_distinct_versions(redis: Any) -> None:
    results = [hangup_flow(c) for c in (16, 17, 18, 19, 21)]
    versions = await asyncio.gather(*(pub.publish(redis, r, prefix=PREFIX) for r in results))
    assert sorted(versions) == [1, 2, 3, 4, 5]
    for v in versions:
        assert json.loads(await redis.get(f"{PREFIX}flows:v:{v}"))["version"] == v


async def test_given_the_live_content_published_again_then_no_new_version(redis: Any) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe(f"{PREFIX}flows:published")
    await pubsub.get_message(timeout=1)
    first = await pub.publish_flows(redis, load([EXAMPLES]), prefix=PREFIX)
    assert (first.version, first.status, first.created) == (1, "published", True)
    assert (await pubsub.get_message(ignore_subscribe_messages=True, timeout=2))["data"] == "1"
    # the same directory from another path: the same content
    again = await pub.publish_flows(redis, load([RELATIVE_EXAMPLES]), prefix=PREFIX)
    assert (again.version, again.status, again.created) == (1, "unchanged", False)
    assert again.sha256 == first.sha256
    assert await redis.get(f"{PREFIX}flows:version") == "1"
    assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2) is None
    await pubsub.aclose()
    rows = await pub.list_versions(redis, prefix=PREFIX)
    assert [(r.version, r.sha256) for r in rows] == [(1, first.sha256)]
    # another content is a new version; the first content again (not live) is one more
    assert (await pub.publish_flows(redis, hangup_flow(17), prefix=PREFIX)).version == 2
    assert (await pub.publish_flows(redis, load([EXAMPLES]), prefix=PREFIX)).version == 3


async def test_given_concurrent_identical_publishes_then_one_version(redis: Any) -> None:
    result = load([EXAMPLES])
    done = await asyncio.gather(*(pub.publish_flows(redis, result, prefix=PREFIX)
                                  for _ in range(5)))
    assert sorted(d.status for d in done) == ["published", *["unchanged"] * 4]
    assert {d.version for d in done} == {1}


async def test_given_if_empty_then_published_only_when_nothing_is_live(redis: Any) -> None:
    a, b = hangup_flow(16), hangup_flow(17)
    made = await pub.publish_flows(redis, a, prefix=PREFIX, if_empty=True)
    assert (made.version, made.status) == (1, "published")
    assert (await pub.publish_flows(redis, b, prefix=PREFIX)).version == 2
    kept = await pub.publish_flows(redis, a, prefix=PREFIX, if_empty=True)
    assert (kept.version, kept.status, kept.created) == (2, "kept", False)
    assert await redis.get(f"{PREFIX}flows:live") == "2"
    assert await redis.get(f"{PREFIX}flows:version") == "2"
    # two controllers starting at once on an empty Redis: one version
    await redis.flushall()
    done = await asyncio.gather(pub.publish_flows(redis, a, prefix=PREFIX, if_empty=True),
                                pub.publish_flows(redis, b, prefix=PREFIX, if_empty=True))
    assert sorted(d.status for d in done) == ["kept", "published"]
    assert await redis.get(f"{PREFIX}flows:version") == "1"


def test_content_hash_ignores_the_directory_and_sees_comments(tmp_path: Path) -> None:
    here = tmp_path / "a"
    there = tmp_path / "b"
    for d in (here, there):
        shutil.copytree(EXAMPLES, d)
    assert pub.content_hash(load([here])) == pub.content_hash(load([there]))
    main = there / "main.yaml"
    main.write_text(main.read_text() + "# a comment\n")
    assert pub.content_hash(load([here])) != pub.content_hash(load([there]))


async def test_commands(redis_url: str, tmp_path: Path) -> None:
    out = io.StringIO()
    assert await commands.publish_async([EXAMPLES], redis_url, prefix="c:", out=out) == 0
    assert out.getvalue().splitlines()[-1] == "published version 1"
    bad = tmp_path / "bad.yaml"
    bad.write_text("flows:\n  x: {entry: nowhere}\n")
    out = io.StringIO()
    assert await commands.publish_async([bad], redis_url, prefix="c:", out=out) == 1
    assert "not published" in out.getvalue()
    out = io.StringIO()
    assert await commands.publish_async([EXAMPLES], redis_url, prefix="c:", out=out) == 0
    assert out.getvalue().splitlines()[-1].startswith(
        "unchanged: version 1 is live with the same content (sha256 ")
    out = io.StringIO()
    assert await commands.publish_async([EXAMPLES], redis_url, prefix="c:", out=out,
                                        if_empty=True) == 0
    assert out.getvalue().splitlines()[-1].startswith("kept: version 1 is live, ")
    out = io.StringIO()
    assert await commands.rollback_async(None, redis_url, prefix="c:", out=out) == 1
    out = io.StringIO()
    assert await commands.versions_async(redis_url, prefix="c:", out=out) == 0
    assert out.getvalue().startswith("*    1  ")
    assert out.getvalue().count("\n") == 1


async def test_commands_redis_unavailable(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"
    assert await commands.publish_async([EXAMPLES], url, out=io.StringIO()) == 3
    assert await commands.rollback_async(1, url, out=io.StringIO()) == 3
    err = capsys.readouterr().err
    assert "Redis unavailable at redis://127.0.0.1:" in err
    assert "s3cret-pw" not in err  # the password is never printed


def test_validate_and_schema_commands(tmp_path: Path) -> None:
    out = io.StringIO()
    assert commands.validate([EXAMPLES], out=out) == 0
    assert out.getvalue().startswith("ok: 2 flow(s), 3 DID(s)")
    bad = tmp_path / "bad.yaml"
    bad.write_text("flows:\n  x:\n    entry: nowhere\n    nodes: {h: {type: hangup}}\n")
    out = io.StringIO()
    assert commands.validate([bad], out=out) == 1
    lines = out.getvalue().splitlines()
    assert f"{bad}:3:12: flows.x.entry: unknown node 'nowhere' (value: 'nowhere')" in lines
    assert lines[-1].startswith("1 error(s)")
    out = io.StringIO()
    assert commands.schema(out=out) == 0
    assert json.loads(out.getvalue())["title"] == "callctl flow file"
