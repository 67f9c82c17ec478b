"""docker/Dockerfile, docker-compose.yml and .dockerignore, checked without a Docker engine
(there is none where this project is tested): the Dockerfile parsed, the compose file through
``docker-compose config`` (Debian's Compose v1; skipped when absent). The entrypoint and the
healthchecks run for real in tests/integration/test_docker_entrypoints.py."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from dockerfile import INSTRUCTIONS, Instruction

ROOT = Path(__file__).resolve().parents[2]


def _in(stage: str, op: str) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.stage == stage and i.op == op]


def test_asterisk_runs_in_the_foreground_as_the_main_process() -> None:
    (cmd,) = _in("asterisk", "CMD")
    argv = cmd.exec_form()  # exec form: no shell stays around as PID 1
    assert not _in("asterisk", "ENTRYPOINT") and not _in("base", "ENTRYPOINT")
    assert argv == ["/opt/callctl/docker/asterisk-entrypoint.sh"]
    script = (ROOT / "docker" / "asterisk-entrypoint.sh").read_text().strip().splitlines()
    assert script[0] == "#!/bin/sh" and "set -eu" in script
    assert re.fullmatch(r'exec asterisk -C "\$conf" -f -n "\$@"', script[-1]), script[-1]
    assert "tail" not in "\n".join(script)


def test_each_target_has_a_healthcheck_and_its_command() -> None:
    for stage, what in (("asterisk", "asterisk"), ("controller", "controller")):
        (check,) = _in(stage, "HEALTHCHECK")
        assert check.exec_form() == ["python", "/opt/callctl/docker/healthcheck.py", what]
        assert "--start-period=" in check.args and "--interval=" in check.args
        assert _in(stage, "CMD")
    assert _in("controller", "CMD")[0].exec_form() == ["callctl", "run"]
    assert (ROOT / "docker" / "healthcheck.py").is_file()


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    base = [i for i in INSTRUCTIONS if i.stage == "base"]
    copies = [(n, i.args) for n, i in enumerate(base) if i.op == "COPY"]
    runs = [(n, i.args) for n, i in enumerate(base) if i.op == "RUN"]
    (whole,) = [n for n, args in copies if args == ". ."]
    deps = [n for n, args in runs if args.startswith("CALLCTL_INSTALL_PROJECT=0 bash "
                                                       "scripts/install.sh")]
    assert deps and deps[0] < whole, "the dependency layer must come before COPY . ."
    before = [args for n, args in copies if n < deps[0]]
    assert "scripts/install.sh scripts/install.sh" in before
    assert "requirements.lock requirements.lock" in before
    assert [args for n, args in runs if n > whole] == [
        "bash scripts/install.sh && rm -rf /root/.cache"]
    assert base[0].args.startswith("debian:bookworm-slim")


def test_a_corporate_ca_is_an_optional_build_input() -> None:
    (arg,) = _in("base", "ARG")
    assert arg.args == "CA_CERTS=docker/ca-certificates"
    assert any(i.args.startswith("${CA_CERTS}/ /usr/local/share/ca-certificates/")
               for i in _in("base", "COPY"))
    runs = " ".join(i.args for i in _in("base", "RUN"))
    assert "update-ca-certificates" in runs and "Acquire::https::CAInfo" in runs
    assert any("PIP_CERT=/etc/ssl/certs/ca-certificates.crt" in i.args
               for i in _in("base", "ENV"))
    assert (ROOT / "docker" / "ca-certificates" / "README.md").is_file()


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; a directory's pattern
    covers what is under it."""
    ignored = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat[1:] if neg else pat
        parts = path.split("/")
        prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        glob = pat.replace("**/", "*")
        if any(fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(p, glob) for p in prefixes):
            ignored = not neg
    return ignored


def test_dockerignore_keeps_secrets_state_and_the_host_venv_out() -> None:
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    for path in ("run/secrets.env", "run/etc/ari-secrets.conf", ".venv/bin/python",
                 ".git/config", ".git", "callctl.env", "controller/__pycache__/x.pyc",
                 "docker/ca-certificates/corp.key", ".venv-lock/bin/uv"):
        assert _ignored(path, patterns), path
    for path in ("scripts/install.sh", "requirements.lock", "pyproject.toml", "README.md",
                 "controller/tools/cli.py", "asterisk-conf/pjsip.conf", "dialplan/x.conf",
                 "prompts/en/welcome.wav", "flows/examples/main.yaml",
                 "docker/asterisk-entrypoint.sh", "docker/healthcheck.py",
                 "docker/ca-certificates/README.md", "docker/ca-certificates/corp.crt",
                 "callctl.env.example"):
        assert not _ignored(path, patterns), path


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose absent (CALLCTL_TEST_DEPS=1 scripts/install.sh)")
def test_docker_compose_config(tmp_path: Path) -> None:
    (tmp_path / "callctl.env").write_text((ROOT / "callctl.env.example").read_text())
    proc = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"),
         "--project-directory", str(tmp_path), "config"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    cfg = yaml.safe_load(proc.stdout)
    svc = cfg["services"]
    assert set(svc) == {"config", "redis", "asterisk", "controller"}
    for name in ("redis", "asterisk", "controller"):
        assert svc[name]["restart"] == "unless-stopped"
        assert svc[name]["network_mode"] == "host"
    # the one-shot config service renders the secrets and redis.conf (requirepass) first
    assert svc["config"]["command"] == ["callctl", "stack", "render"]
    assert svc["redis"]["depends_on"] == {
        "config": {"condition": "service_completed_successfully"}}
    assert svc["redis"]["command"] == ["redis-server", "/opt/callctl/run/etc/redis.conf"]
    assert "redis_ping" in " ".join(svc["redis"]["healthcheck"]["test"])
    assert svc["asterisk"]["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert svc["controller"]["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "asterisk": {"condition": "service_healthy"},
    }
    assert svc["asterisk"]["build"]["target"] == "asterisk"
    assert svc["controller"]["build"]["target"] == "controller"
    assert "command" not in svc["asterisk"]  # the image's CMD: asterisk -f via exec
    assert svc["asterisk"]["init"] is True and svc["controller"]["init"] is True
    assert "redis-data:/opt/callctl/run/redis" in " ".join(svc["redis"]["volumes"])
    assert "redis-data" in cfg["volumes"]
    # The env file reaches the callctl containers (ports and CALLCTL_* settings).
    example = dict(ln.split("=", 1) for ln in (ROOT / "callctl.env.example").read_text()
                   .splitlines() if ln and not ln.startswith("#"))
    assert "CALLCTL_SIP_PORT" in example and "REDIS_URL" in example
    for name in ("asterisk", "controller"):
        env = {k: str(v) for k, v in svc[name]["environment"].items()}
        assert env == {**env, **example}


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose absent")
def test_docker_compose_names_a_missing_env_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"),
         "--project-directory", str(tmp_path), "config"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode != 0 and "callctl.env" in proc.stderr


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint absent (not in Debian)")
def test_hadolint_finds_nothing() -> None:
    proc = subprocess.run(["hadolint", str(ROOT / "docker" / "Dockerfile")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
