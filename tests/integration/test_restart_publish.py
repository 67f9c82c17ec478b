"""Issue 14 item 2: a controller's restart does not replace the flows ops published since.

``callctl run --publish-if-empty DIR`` (what `callctl up`, scripts/run.sh and the compose file
run) publishes DIR only when nothing is published yet; publishing the live version's content
again makes no new version. A real ``callctl run`` process on the slot's stack, crashed with
kill -9 and started again with the same command line.
"""

from __future__ import annotations

import json
from pathlib import Path

from controller.config import PROJECT_ROOT

from integration.conftest import TEST_ENV, Harness, until
from integration.runproc import RunProcess, clean_env
from integration.test_ops_cli import cli

EXAMPLES = str(PROJECT_ROOT / "flows" / "examples")
OTHER = """
flows:
  other:
    dids: ["+15550100"]
    entry: bye
    nodes:
      bye: {type: hangup}
"""


def controller(h: Harness, tmp: Path, *args: str) -> RunProcess:
    env = clean_env(**TEST_ENV, CALLCTL_REDIS_PREFIX=h.prefix, CALLCTL_ADMIN="off",
                    CALLCTL_CONTROLLER_ID="restart-publish", CALLCTL_LOG_FORMAT="json")
    return RunProcess(env, tmp / "controller.log", args)


async def live_version(h: Harness) -> int | None:
    raw = await h.redis.get(f"{h.prefix}flows:live")
    return int(raw) if raw else None


async def test_given_a_version_published_since_when_the_controller_restarts_then_it_stays_live(
        harness: Harness, tmp_path: Path) -> None:
    ctl = controller(harness, tmp_path, "--publish-if-empty", EXAMPLES)
    try:
        ctl.start()  # nothing published yet: the examples become version 1
        await until(lambda: ctl.said("ARI events: connected"), 30, "controller connected")
        assert "published version 1" in ctl.log.read_text()
        assert await live_version(harness) == 1
        # ops publish their own flows while it runs
        other = await harness.publish(OTHER, tmp_path)
        assert other == 2
        ctl.kill9()  # a crash; the supervisor starts the same command line again
        ctl.start()
        await until(lambda: ctl.log.read_text().count("ARI events: connected") >= 2, 30,
                    "controller connected again")
        assert await live_version(harness) == 2
        assert await harness.redis.get(f"{harness.prefix}flows:version") == "2"
        assert "kept: version 2 is live" in ctl.log.read_text()
    finally:
        ctl.stop()


async def test_given_the_same_flows_published_twice_then_one_version(
        harness: Harness, tmp_path: Path) -> None:
    rc, first, _ = await cli(harness, "publish", EXAMPLES, "--json")
    assert rc == 0 and first["status"] == "published" and first["version"] == 1, first
    rc, second, _ = await cli(harness, "publish", EXAMPLES, "--json")
    assert rc == 0, second
    assert (second["status"], second["version"], second["published"]) == ("unchanged", 1, False)
    assert second["sha256"] == first["sha256"]
    rc, text, _ = await cli(harness, "publish", EXAMPLES)
    assert rc == 0 and "unchanged: version 1 is live with the same content" in text
    rc, rows, _ = await cli(harness, "versions", "--json")
    assert rc == 0 and [r["version"] for r in rows] == [1], json.dumps(rows)
    # a forced start publish of the same flows is no new version either
    ctl = controller(harness, tmp_path, "--publish", EXAMPLES)
    try:
        ctl.start()
        await until(lambda: ctl.said("ARI events: connected"), 30, "controller connected")
        assert "unchanged: version 1 is live" in ctl.log.read_text()
        assert await harness.redis.get(f"{harness.prefix}flows:version") == "1"
    finally:
        ctl.stop()
