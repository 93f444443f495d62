"""The hover inspector (pixel, color, class and probability, instance under the cursor) and the
legend of the classes shown (color swatches)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QSizePolicy, QVBoxLayout, QWidget


class Inspector(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 6)
        self.label = QLabel()
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setWordWrap(True)
        self.label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.label.setStyleSheet("font-family: monospace;")
        lay.addWidget(self.label)
        lay.addStretch(1)
        self.show_lines([])

    def show_lines(self, lines: Sequence[str]) -> None:
        self.label.setText("\n".join(lines) if lines else "Hover over the image.")

    def text(self) -> str:
        return self.label.text()


class Legend(QListWidget):
    """One row per class drawn: a color swatch and the class name."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)

    def set_entries(self, entries: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
        self.clear()
        for name, rgb in entries:
            pm = QPixmap(14, 14)
            pm.fill(QColor(*rgb))
            item = QListWidgetItem(QIcon(pm), name)
            item.setData(Qt.ItemDataRole.UserRole, rgb)
            self.addItem(item)
        if not entries:
            item = QListWidgetItem("No classes shown")
            item.setForeground(QColor("gray"))
            self.addItem(item)

    def names(self) -> list[str]:
        return [self.item(i).text() for i in range(self.count())
                if self.item(i).data(Qt.ItemDataRole.UserRole) is not None]
