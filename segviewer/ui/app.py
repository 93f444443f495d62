"""Start-up: the QApplication, pyqtgraph's global options, the window, the event loop."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from segviewer.ui.settings import APP, ORG

ICON = Path(__file__).resolve().parents[2] / "assets" / "icons" / "segviewer.svg"


def configure() -> None:
    """Options set once before any canvas exists: row-major images (HxW arrays, not transposed)."""
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)


def make_app(argv: Sequence[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv or sys.argv[:1]))
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    if ICON.exists():
        app.setWindowIcon(QIcon(str(ICON)))
    configure()
    return app  # type: ignore[return-value]


def run_app(paths: Sequence[Path] = (), models: Sequence[str] = (), weights: Path | None = None,
            device: str | None = None, no_default: bool = False) -> int:
    """Open the window and run the event loop; returns the exit code."""
    app = make_app()
    from segviewer.ui.main_window import MainWindow

    window = MainWindow()
    window.start(paths, models, weights, device, no_default)
    return run_window(app, window)


def run_window(app: QApplication, window: Any) -> int:
    """Show ``window``, run the event loop, and leave promptly once it closes.

    The window's ``closeEvent`` saves the settings and stops the background threads (bounded;
    ``threads_finished`` says whether they all ended). They are not waited for a second time
    here: a model still inside a forward pass in the worker thread cannot be interrupted, so the
    process exits without waiting for it (destroying a running QThread would abort the process
    with a core dump instead). A child model process is already gone by then.
    """
    window.show()
    code = int(app.exec())
    if window.isVisible():  # the loop ended without a close (app.quit()): close the same way
        window.close()
    if not getattr(window, "threads_finished", True):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
