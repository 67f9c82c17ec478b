"""``callctl run`` as a real process for the fault tests (test_resilience, test_scaleout):
started, frozen (SIGSTOP: a stalled process), crashed (``kill -9``), stopped cleanly (SIGTERM)
or stopped whatever it takes, and its JSON log read back."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from controller.config import PROJECT_ROOT

CALLCTL = str(Path(os.environ.get("VIRTUAL_ENV") or PROJECT_ROOT / ".venv") / "bin" / "callctl")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any CALLCTL_ setting, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("CALLCTL_")}, **extra}


class RunProcess:
    """One ``callctl run`` process with ``env``, logging (JSON lines) to :attr:`log`."""

    def __init__(self, env: dict[str, str], log: Path, args: tuple[str, ...] = ()) -> None:
        self.env = env
        self._log = log
        self.args = args
        """Arguments after ``callctl run`` (e.g. ``--publish-if-empty DIR``)."""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self._log

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([CALLCTL, "run", *self.args], env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def freeze(self) -> None:
        """Stall it (SIGSTOP), as a starved or paused process: events and answers pile up
        unread. ``kill9`` or ``term`` (which resumes it first) end it."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def kill9(self) -> None:
        """Die at once, like a crash: no cleanup, no lease released."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
        self.proc = None

    def term(self, timeout: float = 20) -> int:
        """A clean stop (SIGTERM, as a restart or a deploy does): its exit code, once it has
        exited by itself (fails the test after ``timeout`` s; ``stop`` then kills it)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        os.killpg(self.proc.pid, signal.SIGCONT)  # a frozen one wakes up with the SIGTERM
        rc = self.proc.wait(timeout)
        self.proc = None
        return rc

    def stop(self) -> None:
        """Stop it whatever it takes (cleanup): SIGTERM, then SIGKILL after 15 s."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
            os.killpg(self.proc.pid, signal.SIGCONT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def said(self, text: str) -> bool:
        return any(text in str(r.get("msg") or r.get("message") or r) for r in self.lines())
