"""Throw-away redis-server processes for tests: a password (``requirepass``) from a 0600
config file, as ``callctl stack up`` starts its own (controller.tools.stack.conf.redis_config)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from controller.tools.stack.conf import redis_config
from controller.tools.stack.probes import redis_probe

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server on 127.0.0.1:``port`` with a generated password; ``start()`` and
    ``stop()`` may be called again (same port, same password: a Redis restart)."""

    def __init__(self, port: int | None = None, *, password: str | None = None,
                 extra: tuple[str, ...] = (), workdir: Path | None = None,
                 sentinel: bool = False) -> None:
        self.port = port or free_port()
        self.password = secrets.token_urlsafe(16) if password is None else password
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="callctl-redis-"))
        self._own_dir = workdir is None
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / f"redis-{self.port}.conf"
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(redis_config(self.port, self.dir, self.password, extra=extra))
        self.sentinel = sentinel
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        assert REDIS_SERVER is not None, "redis-server is not installed"
        argv = [REDIS_SERVER, str(self.conf), *(["--sentinel"] if self.sentinel else [])]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while redis_probe(self.url) != "ok":
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server {self.conf} exited ({self.proc.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port} did not answer in {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
