"""The stack's config: the run directory's layout, and the Asterisk and Redis config rendered
into it (secrets in mode 0600 files)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from controller.config import PROJECT_ROOT, Settings, ensure_secrets

CONF_DIR = PROJECT_ROOT / "asterisk-conf"
DIALPLAN_DIR = PROJECT_ROOT / "dialplan"
PROMPTS_DIR = PROJECT_ROOT / "prompts"
PHONE_QUALIFY_FREQUENCY = 30
"""Seconds between the SIP OPTIONS Asterisk sends a registered softphone (phone1..3). A phone
that stopped answering them is Unavailable: dialling it fails at once (unreachable: its
alternate rings at once) instead of ringing out. They also keep a NAT binding open."""
PHONE_QUALIFY_TIMEOUT = 3.0
"""Seconds a qualify waits for the phone's answer before the contact is Unavailable."""


@dataclass(frozen=True)
class Paths:
    """Where a run directory keeps the rendered config, logs, spool, pid files, Redis data."""

    run: Path

    @property
    def etc(self) -> Path:
        return self.run / "etc"

    @property
    def log(self) -> Path:
        return self.run / "log"

    @property
    def spool(self) -> Path:
        return self.run / "spool"

    @property
    def pids(self) -> Path:
        return self.run / "run"

    @property
    def redis_dir(self) -> Path:
        return self.run / "redis"

    @property
    def asterisk_conf(self) -> Path:
        return self.etc / "asterisk.conf"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def asterisk_moddir(settings: Settings) -> str:
    """Where the Asterisk in use keeps its modules (Debian moved them to the multiarch dir)."""
    root = settings.asterisk_root or Path("/")
    for d in [root / "usr/lib/asterisk/modules", *sorted(root.glob("usr/lib/*/asterisk/modules"))]:
        if d.is_dir():
            return f"/{d.relative_to(root)}"
    return "/usr/lib/asterisk/modules"


def render(settings: Settings) -> Paths:
    """Render the Asterisk config set into the run directory. Idempotent."""
    p = Paths(settings.run_dir)
    for d in (p.etc, p.log, p.spool / "recording", p.spool / "voicemail", p.pids,
              p.run / "lib", p.run / "cache", p.redis_dir):
        d.mkdir(parents=True, exist_ok=True)
    sec = ensure_secrets(settings.secrets_path)
    subst = {
        "RUN": str(p.run),
        "APP": settings.app,
        "ARI_PORT": str(settings.ari_port),
        "AMI_PORT": str(settings.ami_port),
        "HTTP_BIND": settings.http_bind,
        "SIP_BIND": settings.sip_bind,
        "SIP_PORT": str(settings.sip_port),
        "CARRIER_MATCH": settings.carrier_match,
        "PSTN_HOST": settings.pstn_host,
        "PSTN_PORT": str(settings.pstn_port),
        **{f"AGENT{n}_PORT": str(settings.agent_port_base + n) for n in range(1, 9)},
        "RTP_START": str(settings.rtp_start),
        "RTP_END": str(settings.rtp_end),
        "PROMPTS": str(PROMPTS_DIR),
        "SPOOL": str(p.spool),
        "MODDIR": asterisk_moddir(settings),
        "NODE": settings.node_name,
    }
    sources = sorted(CONF_DIR.glob("*.conf")) + sorted(DIALPLAN_DIR.glob("*.conf"))
    for src in sources:
        text = src.read_text()
        for key, val in subst.items():
            text = text.replace(f"@{key}@", val)
        (p.etc / src.name).write_text(text)
    _write_private(p.etc / "ari-secrets.conf",
                   f"[{settings.ari_user}]\ntype = user\nread_only = no\n"
                   f"password_format = plain\npassword = {sec['ARI_PASSWORD']}\n")
    _write_private(p.etc / "manager-secrets.conf",
                   f"[{settings.ami_user}]\nsecret = {sec['AMI_SECRET']}\n"
                   "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
                   "read = system,call,dtmf,reporting\nwrite = system,call,command,originate\n")
    phones = []
    for n in (1, 2, 3):
        phones.append(
            f"[phone{n}](agent-endpoint)\naors = phone{n}\nauth = phone{n}\n\n"
            f"[phone{n}]\ntype = aor\nmax_contacts = 1\nremove_existing = yes\n"
            f"qualify_frequency = {PHONE_QUALIFY_FREQUENCY}\n"
            f"qualify_timeout = {PHONE_QUALIFY_TIMEOUT}\n\n"
            f"[phone{n}]\ntype = auth\nauth_type = userpass\nusername = phone{n}\n"
            f"password = {sec[f'PHONE{n}_PASSWORD']}\n")
    _write_private(p.etc / "pjsip-secrets.conf", "\n".join(phones))
    url = urlsplit(settings.redis_url)
    if url.scheme in ("redis", "rediss"):
        user, password = redis_credentials(settings.redis_url)
        _write_private(p.etc / "redis.conf", redis_config(
            url.port or 6379, p.redis_dir, password, user=user, appendonly=True))
    return p


def _conf_str(value: str) -> str:
    """A redis.conf argument: double-quoted, anything but printable ASCII as \\xHH."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return '"' + "".join(out) + '"'


def redis_config(port: int, workdir: Path, password: str | None, *, user: str | None = None,
                 appendonly: bool = False, extra: tuple[str, ...] = ()) -> str:
    """A redis.conf for a Redis of ours on 127.0.0.1:``port``: ``requirepass`` (and, for a
    ``user`` other than ``default``, an ACL user with the same password) when ``password``
    is set. Write it with mode 0600: it holds the password."""
    lines = ["# Generated by callctl (mode 0600: it holds the Redis password). Re-rendered at",
             "# every `callctl stack up`: do not edit.",
             f"port {port}", "bind 127.0.0.1", "protected-mode yes",
             f"dir {_conf_str(str(workdir))}", 'save ""',
             f"appendonly {'yes' if appendonly else 'no'}", 'logfile ""']
    if password:
        lines.append(f"requirepass {_conf_str(password)}")
        if user and user != "default":
            lines.append(f"user {_conf_str(user)} on {_conf_str('>' + password)} "
                         "~* &* +@all")
    return "\n".join([*lines, *extra, ""])


def redis_credentials(url: str) -> tuple[str | None, str | None]:
    """(username, password) of a redis:// URL (None: not given)."""
    parts = urlsplit(url)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return user, password
