"""The Internals dock's dense-heads tab (RetinaNet, FCOS, SSD): plain widgets with signals.

Level and class of the score map, what the map shows (scores, FCOS centerness, the anchor
assignment against ground truth), the per-level funnel, the anchors at a click, the class-wise NMS
stepper and the focal-loss controls (gamma 0-5, alpha). The view module fills it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from segviewer.ui.widgets.controls import FocusComboBox, FocusDoubleSpinBox, FocusSlider
from segviewer.ui.widgets.internals_tabs import NmsStepping, text_label

__all__ = ["DenseTab"]


ANCHORS_HINT = "Click the image: the anchors of that location on every level."


class DenseTab(NmsStepping, QWidget):
    """Dense heads: score maps per level, anchors at a click, NMS stepper, focal loss."""

    changed = Signal()  # level, class, map kind, focal knobs: a redraw
    nmsChanged = Signal()  # NMS class or IoU: a new trace
    stepChanged = Signal()

    MAPS = (("class scores (max over anchors)", "scores"), ("FCOS centerness", "centerness"),
            ("anchor assignment (needs ground truth)", "assignment"))

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.level = FocusComboBox()
        self.cls = FocusComboBox()
        self.show_what = FocusComboBox()
        for text, key in self.MAPS:
            self.show_what.addItem(text, key)
        form = QFormLayout()
        form.addRow("Level", self.level)
        form.addRow("Class", self.cls)
        form.addRow("Map", self.show_what)
        self.counts = text_label("")
        self.anchors = text_label(ANCHORS_HINT)
        self.gamma = FocusSlider(Qt.Orientation.Horizontal)
        self.gamma.setRange(0, 50)
        self.gamma.setValue(20)
        self.gamma_label = QLabel("γ 2.0")
        self.alpha = FocusDoubleSpinBox()
        self.alpha.setRange(-1.0, 1.0)
        self.alpha.setSingleStep(0.05)
        self.alpha.setValue(0.25)
        self.alpha.setToolTip("alpha_t weighting positives (alpha) and negatives (1 - alpha); -1 turns it off.")
        self.focal_info = text_label("")
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.counts)
        lay.addWidget(self.anchors)
        self._add_nms_stepper(lay, "Class-wise NMS", "Class")
        self.focal_title = text_label("")
        self.set_focal_rule("retinanet")
        lay.addWidget(self.focal_title)
        f3 = QFormLayout()
        grow = QHBoxLayout()
        grow.addWidget(self.gamma, 1)
        grow.addWidget(self.gamma_label)
        f3.addRow("gamma", grow)
        f3.addRow("alpha", self.alpha)
        lay.addLayout(f3)
        lay.addWidget(self.focal_info)
        lay.addStretch(1)
        for combo in (self.level, self.cls, self.show_what, self.nms_class):  # never wider than the dock
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
        for sig in (self.level.currentIndexChanged, self.cls.currentIndexChanged, self.show_what.currentIndexChanged,
                    self.alpha.valueChanged):
            sig.connect(lambda *_: self.changed.emit())
        self.gamma.valueChanged.connect(self._on_gamma)

    def map_kind(self) -> str:
        return str(self.show_what.currentData() or "scores")

    def class_id(self) -> int | None:
        data = self.cls.currentData()
        return None if data is None or int(data) < 0 else int(data)

    def gamma_value(self) -> float:
        return self.gamma.value() / 10.0

    def set_iou(self, value: float) -> None:
        self.iou.blockSignals(True)
        self.iou.setValue(int(round(value * 100)))
        self.iou_label.setText(f"IoU {self.iou_threshold():.2f}")
        self.iou.blockSignals(False)

    def _on_gamma(self, v: int) -> None:
        self.gamma_label.setText(f"γ {v / 10:.1f}")
        self.changed.emit()

    def set_focal_rule(self, kind: str) -> None:
        """The focal-loss heading names the model's own assignment rule (rich text: ``<`` escaped)."""
        rules = {
            "retinanet": "RetinaNet assignment: IoU ≥ 0.5 positive, &lt; 0.4 negative, between ignored",
            "fcos": ("FCOS assignment: a location inside a box, within 1.5 strides of its centre, on the level "
                     "whose size range holds the box, is positive (the smallest box wins); the rest negative, "
                     "nothing ignored"),
        }
        self.focal_title.setText(f"<b>Focal loss</b> ({rules.get(kind, 'RetinaNet and FCOS train with it')})")
