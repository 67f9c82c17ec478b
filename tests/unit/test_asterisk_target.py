"""CALLCTL_ASTERISK: which Asterisk `callctl stack` runs (host 16.28, or 22 from a sid root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import PROJECT_ROOT, ConfigError, load_settings
from controller.tools import stack
from controller.tools.stack.conf import asterisk_moddir


def _fake_root(tmp_path: Path, moddir: str) -> Path:
    root = tmp_path / "root"
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/asterisk").write_text("")
    (root / moddir).mkdir(parents=True)
    return root


def test_default_is_the_host_asterisk(tmp_path: Path) -> None:
    s = load_settings({"CALLCTL_RUN_DIR": str(tmp_path)})
    assert s.asterisk_version == "" and s.asterisk_root is None


def test_22_runs_from_the_project_sid_root_unless_overridden(tmp_path: Path) -> None:
    s = load_settings({"CALLCTL_RUN_DIR": str(tmp_path), "CALLCTL_ASTERISK": "22"})
    assert s.asterisk_version == "22"
    assert s.asterisk_root == PROJECT_ROOT / "run" / "ast22-root"
    s = load_settings({"CALLCTL_RUN_DIR": str(tmp_path), "CALLCTL_ASTERISK": "22",
                       "CALLCTL_AST22_ROOT": str(tmp_path / "r")})
    assert s.asterisk_root == tmp_path / "r"


def test_unknown_version_names_variable_and_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"CALLCTL_ASTERISK has value '18': use one of 16, 22"):
        load_settings({"CALLCTL_RUN_DIR": str(tmp_path), "CALLCTL_ASTERISK": "18"})


def test_moddir_follows_debians_multiarch_layout_in_the_root(tmp_path: Path) -> None:
    root = _fake_root(tmp_path, "usr/lib/x86_64-linux-gnu/asterisk/modules")
    s = load_settings({"CALLCTL_RUN_DIR": str(tmp_path), "CALLCTL_ASTERISK": "22",
                       "CALLCTL_AST22_ROOT": str(root)})
    assert asterisk_moddir(s) == "/usr/lib/x86_64-linux-gnu/asterisk/modules"
    (root / "usr/lib/asterisk/modules").mkdir(parents=True)  # the classic path wins if present
    assert asterisk_moddir(s) == "/usr/lib/asterisk/modules"


def test_rendered_asterisk_conf_points_at_the_roots_modules(tmp_path: Path) -> None:
    root = _fake_root(tmp_path, "usr/lib/x86_64-linux-gnu/asterisk/modules")
    s = load_settings({"CALLCTL_RUN_DIR": str(tmp_path / "run"), "CALLCTL_ASTERISK": "22",
                       "CALLCTL_AST22_ROOT": str(root)}, generate=True)
    conf = stack.render(s).asterisk_conf.read_text()
    assert "astmoddir => /usr/lib/x86_64-linux-gnu/asterisk/modules\n" in conf
    assert "@" not in conf.replace("@RUN@", "")  # every placeholder replaced


def test_22_argv_chroots_in_a_private_mount_namespace_with_the_project_bound(
        tmp_path: Path) -> None:
    root = _fake_root(tmp_path, "usr/lib/x86_64-linux-gnu/asterisk/modules")
    run = tmp_path / "elsewhere"  # a run dir outside the project is bound too
    s = load_settings({"CALLCTL_RUN_DIR": str(run), "CALLCTL_ASTERISK": "22",
                       "CALLCTL_AST22_ROOT": str(root)})
    argv = stack.asterisk_argv(s, "-C", "/x/asterisk.conf", "-rx", "core show version")
    assert argv[:5] == ["unshare", "--mount", "--propagation", "private", "--"]
    script = argv[argv.index("-c") + 1]
    assert "mount --bind /proc" in script and 'exec chroot "$r" "$@"' in script
    rest = argv[argv.index("-c") + 2:]
    assert rest == ["sh", str(root), "2", str(PROJECT_ROOT), str(run.resolve()),
                    "/usr/sbin/asterisk", "-C", "/x/asterisk.conf", "-rx", "core show version"]


def test_22_without_its_root_says_how_to_make_it(tmp_path: Path) -> None:
    s = load_settings({"CALLCTL_RUN_DIR": str(tmp_path), "CALLCTL_ASTERISK": "22",
                       "CALLCTL_AST22_ROOT": str(tmp_path / "missing")})
    with pytest.raises(stack.StackError, match=r"scripts/install-ast22\.sh"):
        stack.asterisk_argv(s, "-V")
