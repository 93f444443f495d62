"""Small controls that behave inside docks and scroll areas.

* Sliders, spin boxes and combo boxes take the mouse wheel only once they have focus (a click or
  Tab gives it). Qt's own ones change their value under a passing wheel, so scrolling a list of
  opacity sliders changed whichever slider the pointer crossed (0.60 -> 0.51 -> 0.75) instead of
  scrolling. An ignored wheel event goes on to the parent, so the scroll area scrolls.
* :class:`ElidedLabel` is one line that never asks for more width than it gets: the text is
  elided to fit and the full text is in the tooltip.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent, QWheelEvent
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QLabel, QSlider, QSpinBox, QWidget

__all__ = ["ElidedLabel", "FocusComboBox", "FocusDoubleSpinBox", "FocusSlider", "FocusSpinBox"]


def _wheel_when_focused(base: type[QWidget], name: str) -> type[QWidget]:
    """``base`` taking the mouse wheel only when focused (a click or Tab gives focus; the wheel
    never does). An unfocused widget ignores the wheel, so it goes on to the scroll area."""

    def __init__(self: QWidget, *args: object, **kwargs: object) -> None:
        base.__init__(self, *args, **kwargs)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def wheelEvent(self: QWidget, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        if self.hasFocus():
            base.wheelEvent(self, event)
        else:
            event.ignore()

    doc = f"A {base.__name__} that takes the wheel only when focused (see the module docstring)."
    return type(name, (base,), {"__init__": __init__, "wheelEvent": wheelEvent, "__doc__": doc,
                                "__module__": __name__})


FocusSpinBox = _wheel_when_focused(QSpinBox, "FocusSpinBox")
FocusDoubleSpinBox = _wheel_when_focused(QDoubleSpinBox, "FocusDoubleSpinBox")
FocusComboBox = _wheel_when_focused(QComboBox, "FocusComboBox")


class FocusSlider(_wheel_when_focused(QSlider, "_FocusSlider")):  # type: ignore[misc]
    """A slider that takes the wheel only when focused; horizontal unless told otherwise."""

    def __init__(self, orientation: Qt.Orientation = Qt.Orientation.Horizontal,
                 parent: QWidget | None = None) -> None:
        super().__init__(orientation, parent)


class ElidedLabel(QLabel):
    """One line of text elided at the right to the label's width; the full text is the tooltip.

    Its minimum width is a few characters, so a long message (a list of model names, a path)
    never widens the dock it sits in.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None, max_hint: int | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self._max_hint = max_hint  # cap on the preferred width (None: the whole text)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt override
        self._full = text or ""
        self.setToolTip(self._full)
        super().setText(self._full)
        self.updateGeometry()
        self.update()

    def full_text(self) -> str:
        return self._full

    def displayed_text(self) -> str:
        """What is painted at the current width."""
        return self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(self.contentsRect().width(), 0))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        fm = self.fontMetrics()
        m = self.contentsMargins()
        return QSize(fm.horizontalAdvance("Wait…") + m.left() + m.right(), fm.height() + m.top() + m.bottom())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        fm = self.fontMetrics()
        width = fm.horizontalAdvance(self._full) + 4
        if self._max_hint is not None:
            width = min(width, self._max_hint)
        m = self.contentsMargins()
        return QSize(width + m.left() + m.right(), fm.height() + m.top() + m.bottom())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(self.contentsRect(), int(self.alignment() | Qt.AlignmentFlag.AlignVCenter),
                         self.displayed_text())
        painter.end()
