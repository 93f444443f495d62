"""The Internals dock's Upsampling and Receptive-field tabs: plain widgets with signals.

Upsampling: the FCN's stride-32 scores and five 2x upsamplings of them as small images side by
side (one class's score, or the argmax labels), which one to lay over the image, and readouts.
Receptive field: the layer whose unit a click picks, what to draw (effective field, theoretical
box, the PCV head's dilated taps) and readouts. The view module fills them.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QFormLayout, QGridLayout, QLabel, QVBoxLayout, QWidget

from segviewer.ui.widgets.controls import FocusComboBox
from segviewer.ui.widgets.internals_tabs import SmallHeatmap, text_label

__all__ = ["UpsamplingTab", "ReceptiveTab", "COARSE"]

COARSE = "stride-32 scores (input)"


def _narrow(*combos: FocusComboBox) -> None:
    """Long item texts must not widen the narrow dock (as the panel does for its own tabs)."""
    for combo in combos:
        combo.setSizeAdjustPolicy(FocusComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(10)


class UpsamplingTab(QWidget):
    """Six small maps: the coarse input and the five upsamplings of it."""

    changed = Signal()

    def __init__(self, methods: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.what = FocusComboBox()  # "labels" or a class index
        self.overlay = FocusComboBox()
        self.overlay.addItem("nothing", None)
        for name in (COARSE, *methods):
            self.overlay.addItem(name, name)
        _narrow(self.what, self.overlay)
        form = QFormLayout()
        form.addRow("Show", self.what)
        form.addRow("On the image", self.overlay)
        self.info = text_label("")
        self.panels: dict[str, SmallHeatmap] = {}
        grid = QGridLayout()
        for i, name in enumerate((COARSE, *methods)):
            panel = SmallHeatmap(name)
            panel.setMinimumSize(100, 70)
            panel.setMaximumHeight(120)
            self.panels[name] = panel
            cap = QLabel(name)
            cap.setWordWrap(True)
            grid.addWidget(cap, 2 * (i // 2), i % 2)
            grid.addWidget(panel, 2 * (i // 2) + 1, i % 2)
        self.kernel_caption = QLabel("")
        self.kernel_caption.setWordWrap(True)
        self.kernels = {name: SmallHeatmap(name) for name in ("learned", "bilinear")}
        kgrid = QGridLayout()
        for i, (name, panel) in enumerate(self.kernels.items()):
            panel.setMinimumSize(100, 70)
            panel.setMaximumHeight(100)
            kgrid.addWidget(QLabel(f"{name} kernel"), 0, i)
            kgrid.addWidget(panel, 1, i)
        self.compare = text_label("")
        self.point = text_label("Click the image: the values of each method at that pixel.")
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.info)
        lay.addLayout(grid)
        lay.addWidget(self.kernel_caption)
        lay.addLayout(kgrid)
        lay.addWidget(self.compare)
        lay.addWidget(self.point)
        lay.addStretch(1)
        self.what.currentIndexChanged.connect(lambda *_: self.changed.emit())
        self.overlay.currentIndexChanged.connect(lambda *_: self.changed.emit())

    def class_id(self) -> int | None:
        """The class whose score the panels show (None: the argmax labels)."""
        v = self.what.currentData()
        return None if v is None or v < 0 else int(v)

    def overlay_name(self) -> str | None:
        return self.overlay.currentData()


class ReceptiveTab(QWidget):
    """Layer picker and what to draw for the clicked unit."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer = FocusComboBox()
        self.effective = QCheckBox("effective field (|d unit / d input|)")
        self.effective.setChecked(True)
        self.theoretical = QCheckBox("theoretical field (box)")
        self.theoretical.setChecked(True)
        self.taps = QCheckBox("PCV voting head's dilated taps")
        _narrow(self.layer)
        form = QFormLayout()
        form.addRow("FCN layer", self.layer)
        form.addRow(self.effective)
        form.addRow(self.theoretical)
        form.addRow(self.taps)
        self.info = text_label("")
        self.unit = text_label("Click the image: the unit of the chosen layer there.")
        self.taps_info = text_label("")
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.info)
        lay.addWidget(self.unit)
        lay.addWidget(self.taps_info)
        lay.addStretch(1)
        self.layer.currentIndexChanged.connect(lambda *_: self.changed.emit())
        for box in (self.effective, self.theoretical, self.taps):
            box.toggled.connect(lambda *_: self.changed.emit())

    def layer_name(self) -> str | None:
        return self.layer.currentData()
