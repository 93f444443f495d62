"""The Internals dock's CenterNet tab: plain widgets with signals (the view module fills them).

The class heatmap shown (one class or the max over classes), which peaks to draw (every local
maximum the 3 x 3 max-pool finds, and the top-k kept above the score threshold), the threshold,
the decoded boxes of the kept peaks, and the readouts (counts; the heads at a clicked peak).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from segviewer.ui.widgets.controls import FocusComboBox, FocusSlider
from segviewer.ui.widgets.internals_tabs import text_label

__all__ = ["CenterNetTab"]


class CenterNetTab(QWidget):
    """Heatmap class, peaks shown, score threshold; counts and the clicked peak's heads."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cls = FocusComboBox()
        self.cls.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.cls.setMinimumContentsLength(10)
        self.show_all = QCheckBox("all local maxima (3x3 max-pool)")
        self.show_all.setChecked(True)
        self.show_kept = QCheckBox("top-k kept above the threshold")
        self.show_kept.setChecked(True)
        self.show_boxes = QCheckBox("their decoded boxes")
        self.show_boxes.setChecked(True)
        self.thresh = FocusSlider(Qt.Orientation.Horizontal)
        self.thresh.setRange(0, 100)
        self.thresh.setValue(30)
        self.thresh_label = QLabel("0.30")
        form = QFormLayout()
        form.addRow("Heatmap", self.cls)
        row = QHBoxLayout()
        row.addWidget(self.thresh, 1)
        row.addWidget(self.thresh_label)
        form.addRow("Score ≥", row)
        self.counts = text_label("")
        self.peak = text_label("Click a peak (or any cell): its offset and size heads and the box they decode.")
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.show_all)
        lay.addWidget(self.show_kept)
        lay.addWidget(self.show_boxes)
        lay.addWidget(self.counts)
        lay.addWidget(self.peak)
        lay.addStretch(1)
        self.cls.currentIndexChanged.connect(lambda *_: self.changed.emit())
        for box in (self.show_all, self.show_kept, self.show_boxes):
            box.toggled.connect(lambda *_: self.changed.emit())
        self.thresh.valueChanged.connect(self._on_thresh)

    def class_id(self) -> int | None:
        """The heatmap channel picked (0-based), or None for the max over classes."""
        data = self.cls.currentData()
        return None if data is None or int(data) < 0 else int(data)

    def threshold(self) -> float:
        return self.thresh.value() / 100.0

    def _on_thresh(self, v: int) -> None:
        self.thresh_label.setText(f"{v / 100:.2f}")
        self.changed.emit()
