from __future__ import annotations

import stat
from pathlib import Path

import pytest

from controller.config import ConfigError, ensure_secrets, load_settings


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
