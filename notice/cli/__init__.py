"""``flask notice ...``: the maintenance command group.

Each module in this package adds its commands to :data:`notice_cli`; they are all
imported when ``init_app`` registers the group, so adding a command is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil

from flask.cli import AppGroup

notice_cli = AppGroup("notice", help="Notices: sweep and retry deliveries, stats, upkeep.")

_loaded = False


def load_commands() -> AppGroup:
    """Import every command module of this package once; return the group."""
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True
    return notice_cli
