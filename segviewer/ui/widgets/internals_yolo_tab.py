"""The Internals dock's "YOLO grid" tab: plain widgets with signals (the view module fills them).

What the map under the grid shows (the best class-specific score per cell, the best box
confidence, or one class's ``Pr(class | object)``), whether to draw the grid and the cells
responsible for the ground truth, the counts, the clicked cell's readout, and the class-wise NMS
stepper shared with the other detector tabs.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from segviewer.ui.widgets.controls import FocusComboBox
from segviewer.ui.widgets.internals_queries_tab import BarList
from segviewer.ui.widgets.internals_tabs import NmsStepping, text_label

__all__ = ["YoloTab"]


class YoloTab(NmsStepping, QWidget):
    """Map under the grid, grid / responsibility toggles, cell readout, NMS stepper."""

    changed = Signal()  # map or toggles: a redraw
    nmsChanged = Signal()  # NMS class or IoU: a new trace
    stepChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.show_what = FocusComboBox()
        self.show_what.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.show_what.setMinimumContentsLength(10)
        self.show_grid = QCheckBox("grid lines")
        self.show_grid.setChecked(True)
        self.show_resp = QCheckBox("responsible cells (with GT)")
        self.show_resp.setToolTip("The cell (and prior) responsible for each ground-truth object: the one holding its centre. Needs ground truth.")
        self.show_resp.setChecked(True)
        form = QFormLayout()
        form.addRow("Map", self.show_what)
        self.counts = text_label("")
        self.cell = text_label("Click a cell: its B boxes (decoded from the priors), their confidences and "
                               "the cell's class distribution.")
        self.resp = text_label("")
        self.conf_title = QLabel("")
        self.conf_bars = BarList()  # the clicked cell's B confidences
        self.class_title = QLabel("")
        self.class_bars = BarList()  # its Pr(class | object)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.show_grid)
        lay.addWidget(self.show_resp)
        lay.addWidget(self.counts)
        lay.addWidget(self.conf_title)
        lay.addWidget(self.conf_bars)
        lay.addWidget(self.class_title)
        lay.addWidget(self.class_bars)
        lay.addWidget(self.cell)
        lay.addWidget(self.resp)
        self._add_nms_stepper(lay, "Class-wise NMS", "Class")
        self.nms_class.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.nms_class.setMinimumContentsLength(10)
        lay.addStretch(1)
        self.show_what.currentIndexChanged.connect(lambda *_: self.changed.emit())
        for box in (self.show_grid, self.show_resp):
            box.toggled.connect(lambda *_: self.changed.emit())
        self.set_cell_bars([], [])

    def set_classes(self, names: tuple[str, ...]) -> None:
        """The map choices for a bundle's classes (keeps the current choice when it still exists)."""
        old = self.show_what.currentData()
        self.show_what.blockSignals(True)
        self.show_what.clear()
        self.show_what.addItem("class-specific score (best per cell)", "score")
        self.show_what.addItem("box confidence (best of the B boxes)", "conf")
        for k, n in enumerate(names):
            self.show_what.addItem(f"Pr({n} | object)", f"class:{k}")
        i = self.show_what.findData(old) if old is not None else -1
        self.show_what.setCurrentIndex(max(i, 0))
        self.show_what.blockSignals(False)

    def set_cell_bars(self, confs: list[tuple[str, float, bool]], classes: list[tuple[str, float, bool]]) -> None:
        """The clicked cell's box confidences and class distribution as bars (empty: none shown)."""
        self.conf_title.setText("<b>Confidence of each box</b> σ(t_o)" if confs else "")
        self.class_title.setText("<b>Pr(class | object)</b> of the cell" if classes else "")
        self.conf_bars.set_rows(confs)
        self.class_bars.set_rows(classes)
        self.conf_bars.setVisible(bool(confs))
        self.class_bars.setVisible(bool(classes))

    def map_kind(self) -> str:
        return str(self.show_what.currentData() or "score")

    def set_iou(self, value: float) -> None:
        self.iou.blockSignals(True)
        self.iou.setValue(int(round(value * 100)))
        self.iou_label.setText(f"IoU {self.iou_threshold():.2f}")
        self.iou.blockSignals(False)
