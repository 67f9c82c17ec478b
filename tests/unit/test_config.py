from __future__ import annotations

import stat
from pathlib import Path

import pytest

from controller.config import (
    ConfigError,
    ensure_secrets,
    load_settings,
    read_secrets,
    redis_safe_url,
)


def test_bad_port_names_variable_and_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"CALLCTL_SIP_PORT has value 'abc'"):
        load_settings({"CALLCTL_SIP_PORT": "abc", "CALLCTL_RUN_DIR": str(tmp_path)})


def test_bad_url_names_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"REDIS_URL has value 'localhost:6379'"):
        load_settings({"REDIS_URL": "localhost:6379", "CALLCTL_RUN_DIR": str(tmp_path)})


def test_secrets_generated_private_unique_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    first = ensure_secrets(path, {})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first["ARI_PASSWORD"]) >= 24 and first["ARI_PASSWORD"] != first["AMI_SECRET"]
    assert ensure_secrets(path, {}) == first  # not regenerated


def test_env_secret_wins_and_is_not_in_repr(tmp_path: Path) -> None:
    s = load_settings({"CALLCTL_RUN_DIR": str(tmp_path), "CALLCTL_ARI_PASSWORD": "from-env"},
                      generate=True)
    assert s.ari_password == "from-env"
    assert "from-env" not in repr(s)


def test_no_secret_without_generation_is_empty_not_default(tmp_path: Path) -> None:
    s = load_settings({"CALLCTL_RUN_DIR": str(tmp_path)})
    assert s.ari_password == ""


# ------------------------------------------------------------------ Redis password (item 16)

def test_redis_url_gets_the_generated_password_and_never_shows_it(tmp_path: Path) -> None:
    s = load_settings({"CALLCTL_RUN_DIR": str(tmp_path)}, generate=True)
    pw = read_secrets(tmp_path / "secrets.env")["REDIS_PASSWORD"]
    assert len(pw) >= 24
    assert s.redis_url == f"redis://:{pw}@127.0.0.1:6379/0"
    assert pw not in repr(s)
    assert redis_safe_url(s.redis_url) == "redis://127.0.0.1:6379"


@pytest.mark.parametrize(("url", "want"), [
    # no password in REDIS_URL: CALLCTL_REDIS_PASSWORD (quoted for the URL)
    ("redis://10.0.0.5:6380/2", "redis://:e%40v%2Fx@10.0.0.5:6380/2"),
    ("redis://app@10.0.0.5/0", "redis://app:e%40v%2Fx@10.0.0.5/0"),
    ("redis+sentinel://h1:26379,h2:26379/main",
     "redis+sentinel://:e%40v%2Fx@h1:26379,h2:26379/main"),
    # a password of its own wins; an empty one means "no password"
    ("redis://:mine@10.0.0.5/0", "redis://:mine@10.0.0.5/0"),
    ("redis://:@10.0.0.5/0", "redis://:@10.0.0.5/0"),
    ("redis://10.0.0.5/0?password=q", "redis://10.0.0.5/0?password=q"),
    ("redis+sentinel://:mine@h1:26379/main", "redis+sentinel://:mine@h1:26379/main"),
])
def test_redis_password_env_and_explicit_url(tmp_path: Path, url: str, want: str) -> None:
    s = load_settings({"CALLCTL_RUN_DIR": str(tmp_path), "REDIS_URL": url,
                       "CALLCTL_REDIS_PASSWORD": "e@v/x"}, generate=True)
    assert s.redis_url == want
    assert "e@v" not in redis_safe_url(s.redis_url) and "mine" not in redis_safe_url(s.redis_url)


def test_a_bad_redis_url_error_masks_its_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"REDIS_URL has value 'ftp://:\*\*\*@h/0'") as e:
        load_settings({"REDIS_URL": "ftp://:hunter2@h/0", "CALLCTL_RUN_DIR": str(tmp_path)})
    assert "hunter2" not in str(e.value)
