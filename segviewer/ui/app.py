"""Start-up: the QApplication, pyqtgraph's global options, the window, the event loop."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from segviewer.ui.settings import APP, ORG

ICON = Path(__file__).resolve().parents[2] / "assets" / "icons" / "segviewer.svg"


def configure() -> None:
    """Options set once before any canvas exists: row-major images (HxW arrays, not transposed)."""
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)


class GuiThreadGC(QObject):
    """Python's cycle collector, run on the GUI thread only, from a timer.

    Why: automatic collection runs in whichever thread happens to allocate. When a worker thread
    (a model loading or predicting) collects a cycle that holds a Qt widget, the widget is
    destroyed off the GUI thread, and PySide6 can deadlock there (seen: a worker building the
    FCN stuck in ``QMenu::~QMenu`` waiting for the GIL) or crash. pyqtgraph recommends the same.
    """

    def __init__(self, interval_ms: int = 1000, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.collect)
        self.timer.start(interval_ms)

    def collect(self) -> None:
        """The generations the automatic collector would have collected by now."""
        counts = gc.get_count()
        for gen in (2, 1, 0):
            if counts[gen] > self.thresholds[gen]:
                gc.collect(gen)
                return


def make_app(argv: Sequence[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv or sys.argv[:1]))
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    if ICON.exists():
        app.setWindowIcon(QIcon(str(ICON)))
    configure()
    if app.findChild(GuiThreadGC) is None:
        GuiThreadGC(parent=app)
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
