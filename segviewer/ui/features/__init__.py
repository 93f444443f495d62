"""Optional views that plug into the main window without editing it.

Each module in this package exposes ``install(window) -> None``; :func:`install_features` calls
them in name order after the window is built. A feature reaches the window through its public
attributes only: ``window.session`` (signals ``imageShown``/``resultsChanged``, ``image``,
``path``, ``results``, ``set_derived``), ``window.canvas`` (the pyqtgraph view: ``canvas.vb``,
``canvas.hovered``), ``window.menuBar()``, ``window.addDockWidget``, ``window.statusBar()``,
``window.show_error`` and ``window.docks``. A feature that fails to install is reported in the
status bar and left out; the rest of the window keeps working.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from typing import Any

log = logging.getLogger(__name__)


def feature_modules() -> list[str]:
    return sorted(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def install_features(window: Any) -> list[str]:
    """Install every feature; returns the names that failed (already reported to the user)."""
    failed = []
    for name in feature_modules():
        try:
            importlib.import_module(name).install(window)
        except Exception as err:  # noqa: BLE001 - one broken view must not take the window down
            log.exception("feature %s failed to install", name)
            failed.append(name)
            window.statusBar().showMessage(f"{name.rsplit('.', 1)[-1]} view unavailable: {err}", 10000)
    return failed
