"""The composition root (controller.tools.app): the shell is handed its admin API from above
and imports nothing of ops/, admin/ or tools/ (not even under TYPE_CHECKING); ops/ imports no
admin/ or tools/, admin/ no tools/. No network, no event loop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from controller.admin.server import AdminServer
from controller.config import load_settings
from controller.tools.app import build_controller

PKG = Path(__file__).resolve().parents[2] / "controller"
ABOVE = {  # a package -> the packages above it, which it must not import
    "config.py": ("ops", "admin", "tools"), "logs.py": ("ops", "admin", "tools"),
    "core": ("ops", "admin", "tools"), "adapters": ("ops", "admin", "tools"),
    "cluster": ("ops", "admin", "tools"), "shell": ("ops", "admin", "tools"),
    "ops": ("admin", "tools"), "admin": ("tools",),
}


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


@pytest.mark.parametrize("part", sorted(ABOVE))
def test_no_module_imports_a_layer_above_its_own(part: str) -> None:
    root = PKG / part
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    bad = [f"{f.relative_to(PKG.parent)}: {m}" for f in files for m in sorted(imported(f))
           if any(m == f"controller.{up}" or m.startswith(f"controller.{up}.")
                  for up in ABOVE[part])]
    assert not bad, "\n".join(bad)


def test_the_composition_root_hands_the_controller_its_admin_api() -> None:
    ctl = build_controller(load_settings({}))
    assert isinstance(ctl.services.admin_api, AdminServer)
    assert ctl.services.admin_api.ctl is ctl and ctl.services.admin is None  # not started
