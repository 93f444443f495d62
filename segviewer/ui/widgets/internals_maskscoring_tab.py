"""The Internals dock's "Mask scoring" tab: plain widgets (the view module fills them).

A scatter of each detection's score against its mask's real IoU with the ground truth, one
colour per scoring rule (Mask R-CNN's box score, Mask Scoring R-CNN's box score x predicted mask
IoU), with the clicked detection's points ringed; the rules' correlations and the clicked
detection's numbers below. Without ground truth the x axis is the MaskIoU head's predicted IoU.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QVBoxLayout, QWidget

from segviewer.ui.widgets.internals_tabs import text_label

__all__ = ["MaskScoringTab", "RULE_COLORS", "RULE_CHOICES"]

#: box score (Mask R-CNN) orange, box x predicted IoU (Mask Scoring R-CNN) cyan
RULE_COLORS = {"box": (255, 150, 40), "mask": (60, 200, 255)}
#: the rule that scores the model's layer (``params.extra["scoring"]``): (label, rule)
RULE_CHOICES = (("box × mask IoU", "mask"), ("box score", "box"))


class MaskScoringTab(QWidget):
    """Scatter (score vs IoU, both rules), correlation line, clicked detection's readout."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumSize(200, 200)
        self.plot.setMaximumHeight(260)
        self.plot.setBackground((25, 25, 25))
        p = self.plot.getPlotItem()
        p.setLabel("left", "score")
        p.setLabel("bottom", "real mask IoU")
        p.setXRange(0, 1, padding=0.03)
        p.setYRange(0, 1, padding=0.03)
        p.showGrid(x=True, y=True, alpha=0.2)
        p.setMouseEnabled(x=False, y=False)
        p.hideButtons()
        self.diagonal = p.plot([0, 1], [0, 1], pen=pg.mkPen(120, 120, 120, style=pg.QtCore.Qt.PenStyle.DashLine))
        self.points = {r: pg.ScatterPlotItem(size=6, pen=None, brush=pg.mkBrush(*c, 200))
                       for r, c in RULE_COLORS.items()}
        for item in self.points.values():
            p.addItem(item)
        self.picked = pg.ScatterPlotItem(size=14, pen=pg.mkPen(255, 255, 255, width=2), brush=None)
        p.addItem(self.picked)
        self.legend = text_label(
            "<span style='color:#ff9628'>●</span> box score s_cls (Mask R-CNN)<br>"
            "<span style='color:#3cc8ff'>●</span> s_cls × predicted mask IoU (Mask Scoring R-CNN)")
        self.rule = QComboBox()  # which rule scores the layer (a new pass through the worker)
        for label, rule in RULE_CHOICES:
            self.rule.addItem(label, rule)
        self.rule.setToolTip("The score the layer's detections carry (and the score threshold filters): "
                             "Mask Scoring R-CNN's s_cls × predicted mask IoU, or Mask R-CNN's box score "
                             "s_cls (as segviewer predict --set scoring=box). Switching runs the model again "
                             "(or takes the cached pass).")
        rule_row = QHBoxLayout()
        rule_row.addWidget(text_label("Layer scored by"))
        rule_row.addWidget(self.rule, 1)
        self.counts = text_label("")
        self.info = text_label("Click a detection on the image.")
        lay = QVBoxLayout(self)
        lay.addWidget(self.plot)
        lay.addWidget(self.legend)
        lay.addLayout(rule_row)
        lay.addWidget(self.counts)
        lay.addWidget(self.info)
        lay.addStretch(1)

    def set_points(self, x: np.ndarray, box: np.ndarray, mask: np.ndarray, x_label: str) -> None:
        """Both rules' scores (y) against ``x`` (real or predicted IoU) for every detection."""
        self.plot.getPlotItem().setLabel("bottom", x_label)
        self.points["box"].setData(np.asarray(x, float), np.asarray(box, float))
        self.points["mask"].setData(np.asarray(x, float), np.asarray(mask, float))

    def rule_key(self) -> str:
        """The rule picked for the layer: "mask" (Mask Scoring R-CNN) or "box" (Mask R-CNN)."""
        return str(self.rule.currentData())

    def show_rule(self, rule: str) -> None:
        """Show ``rule`` (the one the shown pass used) without announcing a change."""
        i = self.rule.findData(rule)
        if i >= 0 and i != self.rule.currentIndex():
            self.rule.blockSignals(True)
            self.rule.setCurrentIndex(i)
            self.rule.blockSignals(False)

    def set_picked(self, x: float | None, ys: tuple[float, float] = (0.0, 0.0)) -> None:
        if x is None:
            self.picked.setData([], [])
        else:
            self.picked.setData([x, x], list(ys))
