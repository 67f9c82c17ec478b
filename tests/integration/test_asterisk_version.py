"""The Asterisk the suite runs against is the one asked for (CALLCTL_ASTERISK), and running
Asterisk 22 from its sid root leaves nothing mounted on the host."""

from __future__ import annotations

import asyncio
from pathlib import Path

from controller.adapters.ari.client import AriClient
from controller.config import Settings
from controller.tools import stack


async def test_stack_runs_the_asked_for_asterisk_and_its_cli_answers(
        test_settings: Settings, ari: AriClient) -> None:
    info = await ari.asterisk_info()
    version = (info or {}).get("system", {}).get("version", "")
    want = test_settings.asterisk_version
    assert version.startswith(f"{want}.") if want else version, version
    st = stack.status(test_settings)
    assert st["asterisk"]["detail"] == version
    cli = await asyncio.to_thread(stack.asterisk_cli, test_settings, "core show version")
    assert cli.startswith(f"Asterisk {version} "), cli


def test_nothing_of_the_sid_root_is_mounted_on_the_host(test_settings: Settings) -> None:
    root = test_settings.asterisk_root
    if root is None:
        return  # the host's own Asterisk: no root, nothing to mount
    assert stack.status(test_settings)["asterisk"]["ari"]
    mounted = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    assert not [m for m in mounted if m == str(root) or m.startswith(f"{root}/")], mounted
