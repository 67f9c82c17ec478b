"""The composition root: one controller process, wired.

The shell (:mod:`controller.shell`) runs the calls and imports nothing above it; here, at the
top, the Controller is made and handed its admin HTTP API (:mod:`controller.admin`), which the
controller's services start and stop with it when ``settings.admin`` is ``on``
(:class:`controller.shell.services.Services`). ``callctl run`` and the tests' harness build
their controller here.
"""

from __future__ import annotations

from typing import Any

from controller.admin.server import AdminServer
from controller.config import Settings
from controller.shell.runtime import Controller


def build_controller(settings: Settings, **kw: Any) -> Controller:
    """A Controller (``kw``: its options) with its admin API handed in (started with it only
    when ``settings.admin`` is ``on``)."""
    ctl = Controller(settings, **kw)
    ctl.services.admin_api = AdminServer(ctl)
    return ctl
