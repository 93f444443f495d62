"""How the window's panels share a small screen: the size it must fit, panels that scroll instead
of growing the window, the rows the Layers panel keeps, a saved size fitted to this screen.

The window (:mod:`segviewer.ui.main_window`) only wires these together; the numbers and the Qt
details of "fit a 1366 x 768 laptop" live here, tested by ``tests/ui/test_window_layout.py``.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QFrame,
    QLabel,
    QMainWindow,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

__all__ = ["FIT_SCREEN", "LAYER_ROWS_MIN", "scrolling", "needed_width", "keep_rows", "with_note", "restore_geometry"]

#: The smallest screen the window must fit with its default docks, in the image and the video view
#: (a 1366 x 768 laptop less a task bar and the title bar). Panels taller than their share scroll.
FIT_SCREEN = QSize(1340, 720)
#: The layer rows keep at least this many rows on screen, however full the right column gets.
LAYER_ROWS_MIN = 6


def scrolling(widget: QWidget) -> QWidget:
    """``widget`` in a frameless scroll area (as is when it scrolls itself): a panel taller than
    its dock scrolls instead of pushing the window past the screen."""
    if isinstance(widget, QAbstractScrollArea):
        return widget
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setObjectName(f"{widget.objectName() or type(widget).__name__}_scroll")
    return area


def needed_width(widget: QWidget) -> int:
    """The width ``widget`` (a dock's content, see :func:`scrolling`) needs to show its panel
    without scrolling sideways: the panel's minimum plus the vertical scroll bar a scrolling panel
    may show (a column set to the panel's bare minimum cuts its text at the right edge)."""
    if isinstance(widget, QScrollArea) and widget.widget() is not None:
        bar = widget.verticalScrollBar().sizeHint().width()
        return widget.widget().minimumSizeHint().width() + bar + 2 * widget.frameWidth()
    return widget.minimumSizeHint().width()


def keep_rows(area: QScrollArea, rows: int) -> None:
    """``area`` (a list of checkbox / slider rows) keeps ``rows`` rows in view."""
    row = max(area.fontMetrics().height() + 10, 24)  # a row and the grid's spacing
    area.setMinimumHeight(rows * row)


def with_note(panel: QWidget) -> tuple[QWidget, QLabel]:
    """``panel`` and a hidden note in one widget: show either. The hidden one asks for no room,
    so a tall panel replaced by its note no longer sets the window's minimum height."""
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    note = QLabel()
    note.setWordWrap(True)
    note.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    note.setContentsMargins(8, 8, 8, 8)
    note.setStyleSheet("color: #8a8a8a;")
    note.setVisible(False)
    lay.addWidget(panel)
    lay.addWidget(note)
    return box, note


def restore_geometry(window: QMainWindow, saved: QByteArray | None) -> None:
    """The size and place the user last gave the window, fitted to this screen (it may have been
    saved on a larger one, or by a version that grew the window); 95% of the screen the first time."""
    screen = window.screen().availableGeometry()
    if saved is None or not window.restoreGeometry(saved):
        window.resize(min(1500, int(screen.width() * 0.95)), min(920, int(screen.height() * 0.95)))
    elif window.width() > screen.width() or window.height() > screen.height():
        window.resize(min(window.width(), screen.width()), min(window.height(), screen.height()))
