"""Docker HEALTHCHECK of callctl's containers (docker/Dockerfile): exit 0 when healthy.

    healthcheck.py asterisk     Asterisk has fully booted, asked on its CLI with the project's
                                config: asterisk -C <run dir>/etc/asterisk.conf
                                -rx 'core waitfullybooted'. Not 'core show uptime': the CLI
                                answers that while modules still load, and Asterisk 16 loses a
                                SIGTERM (docker stop) that comes before it has fully booted.
    healthcheck.py controller   the admin API's /health answers 200 (ARI and Redis answer)

Both read the CALLCTL_* settings the checked process reads (env_file in docker-compose.yml).
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request

from controller.config import load_settings
from controller.tools.stack import Paths

TIMEOUT = 4.0


def asterisk() -> tuple[bool, str]:
    conf = Paths(load_settings().run_dir).asterisk_conf
    if not conf.is_file():  # else asterisk -rx would ask the system's default socket
        return False, f"no {conf} (not rendered yet)"
    try:
        out = subprocess.run(["asterisk", "-C", str(conf), "-rx", "core waitfullybooted"],
                             capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"asterisk -rx: {e}"
    text = (out.stdout + out.stderr).strip()
    return "fully booted" in text, text.splitlines()[0] if text else "no answer"


def controller() -> tuple[bool, str]:
    s = load_settings()
    if s.admin == "off":
        return False, "CALLCTL_ADMIN=off: no /health to ask"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(s.admin_bind, s.admin_bind)
    url = f"http://{f'[{host}]' if ':' in host else host}:{s.admin_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            return resp.status == 200, f"{url}: {resp.status}"
    except urllib.error.HTTPError as e:
        return False, f"{url}: {e.code} {e.read(300).decode(errors='replace')}"
    except (OSError, ValueError) as e:
        return False, f"{url}: {e}"


def main(argv: list[str]) -> int:
    checks = {"asterisk": asterisk, "controller": controller}
    if len(argv) != 1 or argv[0] not in checks:
        print(f"usage: healthcheck.py {'|'.join(checks)}", file=sys.stderr)
        return 2
    ok, detail = checks[argv[0]]()
    print(detail)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
