"""The stack's Redis config (controller.tools.stack.conf.redis_config) and probe, against a real
redis-server: the password is required, and any password survives the config's quoting."""

from __future__ import annotations

import stat
from pathlib import Path
from urllib.parse import quote

import pytest
from redisproc import REDIS_SERVER, RedisServer

from controller.config import load_settings
from controller.tools import stack
from controller.tools.stack import probes
from controller.tools.stack.conf import redis_credentials

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")


def test_a_password_with_quotes_spaces_and_non_ascii_is_the_one_redis_requires() -> None:
    pw = 'p "w" \\ x\'y\té#%@/:'
    srv = RedisServer(password=pw)
    try:
        srv.start()  # its start waits on redis_probe(srv.url) == "ok": the exact password
        base = f"127.0.0.1:{srv.port}/0"
        assert probes.redis_probe(f"redis://:{quote(pw, safe='')}@{base}") == "ok"
        assert probes.redis_probe(f"redis://{base}") == "auth"  # NOAUTH
        assert probes.redis_probe(f"redis://:{quote(pw[:-1], safe='')}@{base}") == "auth"
        assert "requirepass" in srv.conf.read_text()
        assert stat.S_IMODE(srv.conf.stat().st_mode) == 0o600
    finally:
        srv.cleanup()
    assert probes.redis_probe(f"redis://127.0.0.1:{srv.port}/0") == "down"


def test_a_redis_without_a_password_refuses_ours() -> None:
    """A Redis of an older run/ (no requirepass): our AUTH is refused, so it is "auth", not
    "ok" (the controller could not use it), and `stack up` says so."""
    srv = RedisServer(password="")
    try:
        srv.start()
        assert probes.redis_probe(f"redis://:ours@127.0.0.1:{srv.port}/0") == "auth"
    finally:
        srv.cleanup()


def test_render_writes_a_private_redis_conf_with_the_generated_password(tmp_path: Path) -> None:
    s = load_settings({"CALLCTL_RUN_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:6390/0"},
                      generate=True)
    paths = stack.render(s)
    conf = paths.etc / "redis.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    text = conf.read_text()
    _, password = redis_credentials(s.redis_url)
    assert password and f'requirepass "{password}"' in text
    assert "port 6390" in text and "bind 127.0.0.1" in text


def test_the_probe_of_something_that_is_not_redis_tries_once() -> None:
    """One connection per probe: redis-py's default retry (3 more attempts with backoff, ~2.4 s
    of sleeps) made `stack up` of a stopped Redis, and the tests' Redis restarts, wait ~5 s."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(5)
    accepted: list[int] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()  # a reset before any reply: a connection error, as redis-py sees it

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        assert probes.redis_probe(f"redis://127.0.0.1:{srv.getsockname()[1]}/0") == "down"
    finally:
        done.set()
        srv.close()
        t.join(5)
    assert len(accepted) == 1, accepted
