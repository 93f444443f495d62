"""The Internals dock's tabs: plain widgets with signals; the feature controller fills them.

No model or torch code here: each tab shows numbers and small heatmaps it is given and reports
what the user changed (head, channel, level, NMS step, thresholds, stage).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from segviewer.ui.widgets.controls import FocusComboBox, FocusDoubleSpinBox, FocusSlider, FocusSpinBox

__all__ = ["NmsStepping", "text_label", "SmallHeatmap", "RoITab", "RPNTab", "MaskTab", "KeypointsTab", "VotesTab", "FCNTab", "InternalsPanel"]


def text_label(text: str = "") -> QLabel:
    """A wrapping, selectable label: the tabs' readouts."""
    lab = QLabel(text)
    lab.setWordWrap(True)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return lab



class NmsStepping:
    """The NMS stepper both the RPN tab and the dense-heads tab show: a class (or level) picker,
    an IoU slider, Reset / Run all / Back / Step and a readout. A plain mixin for a QWidget that
    declares ``nmsChanged`` (class or IoU: a new trace) and ``stepChanged``."""

    def _add_nms_stepper(self, lay: QVBoxLayout, title: str, class_label: str,
                         rows_before: tuple[tuple[str, QWidget], ...] = ()) -> None:
        self.nms_class = FocusComboBox()
        self.iou = FocusSlider(Qt.Orientation.Horizontal)
        self.iou.setRange(5, 95)
        self.iou.setValue(50)
        self.iou_label = QLabel("IoU 0.50")
        self.reset, self.back = QPushButton("Reset"), QPushButton("◀ Back")
        self.step, self.all = QPushButton("Step ▶"), QPushButton("Run all")
        self.nms_info = text_label("")
        self.n_steps = 0
        self.max_steps = 0
        lay.addWidget(QLabel(f"<b>{title}</b>"))
        form = QFormLayout()
        for name, widget in rows_before:
            form.addRow(name, widget)
        form.addRow(class_label, self.nms_class)
        row = QHBoxLayout()
        row.addWidget(self.iou, 1)
        row.addWidget(self.iou_label)
        form.addRow("IoU threshold", row)
        lay.addLayout(form)
        buttons = QGridLayout()  # 2 x 2: the dock is narrow
        for i, b in enumerate((self.reset, self.all, self.back, self.step)):
            buttons.addWidget(b, i // 2, i % 2)
        lay.addLayout(buttons)
        lay.addWidget(self.nms_info)
        self.nms_class.currentIndexChanged.connect(lambda *_: self.nmsChanged.emit())
        self.iou.valueChanged.connect(self._on_iou)
        self.step.clicked.connect(lambda: self.go(self.n_steps + 1))
        self.back.clicked.connect(lambda: self.go(self.n_steps - 1))
        self.all.clicked.connect(lambda: self.go(self.max_steps))
        self.reset.clicked.connect(lambda: self.go(0))

    def iou_threshold(self) -> float:
        return self.iou.value() / 100.0

    def _on_iou(self, v: int) -> None:
        self.iou_label.setText(f"IoU {v / 100:.2f}")
        self.nmsChanged.emit()

    def go(self, n: int) -> None:
        """Show the trace after ``n`` suppression steps (clamped to the trace)."""
        n = max(0, min(int(n), self.max_steps))
        if n != self.n_steps:
            self.n_steps = n
            self.stepChanged.emit()
        self.back.setEnabled(n > 0)
        self.step.setEnabled(n < self.max_steps)


class SmallHeatmap(pg.GraphicsLayoutWidget):
    """A little RGBA image with a title (pooled bins, 28 x 28 logits, the voting table)."""

    def __init__(self, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(120, 120)
        self.vb = self.addViewBox(lockAspect=True, invertY=True, enableMenu=False, enableMouse=False)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.item)
        self.title = title

    def set_rgba(self, rgba: np.ndarray | None) -> None:
        if rgba is None:
            self.item.clear()
            return
        self.item.setImage(np.ascontiguousarray(rgba), levels=None)
        self.vb.autoRange(padding=0.02)


class RoITab(QWidget):
    """RoIAlign / RoIPool of the clicked detection."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.head = FocusComboBox()
        self.head.addItem("box head (7 x 7)", "box")
        self.head.addItem("mask head (14 x 14)", "mask")
        self.aligned = QCheckBox("aligned (half-pixel offset)")
        self.show_pool = QCheckBox("RoIPool grid")
        self.show_pool.setChecked(True)
        self.show_links = QCheckBox("links to feature cells")
        self.channel = FocusSpinBox()
        self.channel.setRange(0, 0)
        form = QFormLayout()
        form.addRow("Head", self.head)
        form.addRow(self.aligned)  # spans the row: no empty label column to widen the dock
        form.addRow(self.show_pool)  # spans the row: no empty label column to widen the dock
        form.addRow(self.show_links)  # spans the row: no empty label column to widen the dock
        form.addRow("Channel", self.channel)
        self.info = text_label("Click a detection on the image.")
        self.hover = text_label("")
        self.align_map = SmallHeatmap("RoIAlign")
        self.pool_map = SmallHeatmap("RoIPool")
        maps = QHBoxLayout()
        for title, w in (("RoIAlign bins", self.align_map), ("RoIPool bins", self.pool_map)):
            col = QVBoxLayout()
            col.addWidget(QLabel(title))
            col.addWidget(w)
            maps.addLayout(col)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.info)
        lay.addLayout(maps)
        lay.addWidget(self.hover)
        lay.addStretch(1)
        for sig in (self.head.currentIndexChanged, self.aligned.toggled, self.show_pool.toggled,
                    self.show_links.toggled, self.channel.valueChanged):
            sig.connect(lambda *_: self.changed.emit())

    def head_name(self) -> str:
        return str(self.head.currentData())

    def clear(self) -> None:
        """No detection drawn (a new image, none picked): nothing of the last one stays."""
        self.info.setText("Click a detection on the image.")
        self.hover.setText("")
        self.align_map.set_rgba(None)
        self.pool_map.set_rgba(None)

    def offer_mask_head(self, on: bool) -> None:
        """Grey out "mask head" for a model without one (Faster / Keypoint R-CNN), back to the box head."""
        item = self.head.model().item(self.head.findData("mask"))
        item.setEnabled(on)
        item.setToolTip("" if on else "This model has no mask head.")
        if not on and self.head_name() == "mask":
            self.head.setCurrentIndex(self.head.findData("box"))


class RPNTab(NmsStepping, QWidget):
    """Anchors at a click, objectness per level, proposal counts and the NMS stepper."""

    levelChanged = Signal()
    nmsChanged = Signal()  # class/level or IoU threshold: a new trace
    nmsStageChanged = Signal()  # box head vs RPN: new groups and the model's threshold for it
    stepChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.level = FocusComboBox()
        self.objectness = QCheckBox("objectness heatmap")
        self.objectness.setChecked(True)
        self.counts = text_label("")
        self.anchors = text_label("Click the image to see the anchors centred there.")
        self.nms_which = FocusComboBox()
        self.nms_which.addItem("box head: one class at a time", "box")
        self.nms_which.addItem("RPN: one FPN level at a time", "rpn")
        self.nms_which.setToolTip("torchvision runs the RPN's NMS per FPN level (batched_nms with the level as "
                                  "the group) and the box head's per class.")
        form = QFormLayout()
        form.addRow("FPN level", self.level)
        form.addRow("", self.objectness)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.counts)
        lay.addWidget(self.anchors)
        self._add_nms_stepper(lay, "NMS stepper", "Class / level", (("NMS", self.nms_which),))
        lay.addStretch(1)
        self.level.currentIndexChanged.connect(lambda *_: self.levelChanged.emit())
        self.objectness.toggled.connect(lambda *_: self.levelChanged.emit())
        self.nms_which.currentIndexChanged.connect(lambda *_: self.nmsStageChanged.emit())

    def clear(self) -> None:
        """No bundle (a new image being captured, no detector): no counts, anchors or NMS groups
        of the last one."""
        self.counts.setText("")
        self.anchors.setText("Click the image to see the anchors centred there.")
        self.nms_class.blockSignals(True)
        self.nms_class.clear()
        self.nms_class.blockSignals(False)
        self.nms_info.setText("")

    def nms_stage(self) -> str:
        """"box" (the box head's per-class NMS) or "rpn" (the RPN's per-level NMS)."""
        return str(self.nms_which.currentData() or "box")

    def set_iou(self, value: float) -> None:
        self.iou.setValue(int(round(value * 100)))


class MaskTab(QWidget):
    """The selected instance's raw mask logits, the mask pasted into its box, and every class's
    channel read two ways: per-class sigmoid (Mask R-CNN) beside softmax across classes."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.logits = SmallHeatmap("mask logits")
        self.logits.setMinimumSize(160, 160)
        self.logits.setMaximumHeight(200)
        self.threshold = FocusSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(1, 99)
        self.threshold.setValue(50)
        self.thr_label = QLabel("0.50")
        self.rule = FocusComboBox()
        self.rule.addItem("per-class sigmoid (Mask R-CNN)", "sigmoid")
        self.rule.addItem("softmax across classes", "softmax")
        self.rule.setToolTip("Which reading of the predicted class's channel is pasted on the image. The model "
                             "was trained with the sigmoid; the softmax shows what competition between the "
                             "classes' channels would do to these same logits.")
        self.channel = FocusComboBox()
        self.channel.setToolTip("The class channel shown above and pasted on the image: the box head's class "
                                "(what Mask R-CNN reads) or any other, to see what the other classes' masks say.")
        self.sigmoid_gallery = SmallHeatmap("sigmoid")
        self.softmax_gallery = SmallHeatmap("softmax")
        for g in (self.sigmoid_gallery, self.softmax_gallery):  # one above the other: the dock is narrow
            g.setMinimumSize(150, 70)
            g.setMaximumHeight(180)
        self.info = text_label("Click a detection on the image.")
        self.choices = text_label("")
        row = QHBoxLayout()
        row.addWidget(QLabel("Threshold"))
        row.addWidget(self.threshold, 1)
        row.addWidget(self.thr_label)
        form = QFormLayout()
        form.addRow("Channel", self.channel)
        form.addRow("Pasted", self.rule)
        galleries = QVBoxLayout()
        for title, g in (("per-class sigmoid (each channel alone: Mask R-CNN)", self.sigmoid_gallery),
                         ("softmax across classes (channels compete per cell)", self.softmax_gallery)):
            galleries.addWidget(text_label(title))
            galleries.addWidget(g)
        lay = QVBoxLayout(self)
        self.logits_title = text_label("Raw logits of the predicted class (blue < 0 < red)")
        lay.addWidget(self.logits_title)
        lay.addWidget(self.logits, 1)
        lay.addLayout(row)
        lay.addLayout(form)
        lay.addWidget(self.info)
        lay.addWidget(text_label("<b>Every class's channel</b> (probability 0..1, the box head's class framed)"))
        lay.addLayout(galleries)
        lay.addWidget(self.choices)
        lay.addStretch(1)
        self.threshold.valueChanged.connect(self._on_thr)
        self.rule.currentIndexChanged.connect(lambda *_: self.changed.emit())
        self.channel.currentIndexChanged.connect(lambda *_: self.changed.emit())

    def value(self) -> float:
        return self.threshold.value() / 100.0

    def clear(self) -> None:
        """No detection drawn: the last one's logits, galleries and numbers go."""
        self.logits.set_rgba(None)
        self.sigmoid_gallery.set_rgba(None)
        self.softmax_gallery.set_rgba(None)
        self.info.setText("Click a detection on the image.")
        self.choices.setText("")

    def set_channels(self, names: list[tuple[str, int]]) -> None:
        """The class channels on offer, ``(label, class id)``, after "the box head's class" (-1);
        keeps the picked class when it is still offered."""
        keep = self.channel.currentData()
        self.channel.blockSignals(True)
        self.channel.clear()
        self.channel.addItem("the box head's class", -1)
        for label, k in names:
            self.channel.addItem(label, int(k))
        i = self.channel.findData(keep) if keep is not None else -1
        self.channel.setCurrentIndex(max(i, 0))
        self.channel.blockSignals(False)

    def channel_class(self) -> int | None:
        """The picked class channel, or None for the box head's class."""
        k = self.channel.currentData()
        return None if k is None or int(k) < 0 else int(k)

    def rule_name(self) -> str:
        """"sigmoid" or "softmax": the reading pasted on the image."""
        return str(self.rule.currentData() or "sigmoid")

    def _on_thr(self, v: int) -> None:
        self.thr_label.setText(f"{v / 100:.2f}")
        self.changed.emit()


class KeypointsTab(QWidget):
    """Keypoint R-CNN: the clicked person's keypoint maps (one per keypoint type) and one picked."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.keypoint = FocusComboBox()
        self.keypoint.setToolTip("The keypoint type whose map is pasted into the box on the image.")
        self.show_as = FocusComboBox()
        self.show_as.addItem("softmax over the map's cells", "softmax")
        self.show_as.addItem("raw logits", "logits")
        self.gallery = SmallHeatmap("keypoint maps")
        self.gallery.setMinimumSize(220, 300)
        self.gallery.setMaximumHeight(420)
        self.info = text_label("Click a person on the image.")
        form = QFormLayout()
        form.addRow("Keypoint", self.keypoint)
        form.addRow("Maps as", self.show_as)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(text_label("One 56 x 56 map per keypoint type (each its own scale; the cross marks the "
                                 "map's argmax cell, the picked type framed)"))
        lay.addWidget(self.gallery)
        lay.addWidget(self.info)
        lay.addStretch(1)
        for sig in (self.keypoint.currentIndexChanged, self.show_as.currentIndexChanged):
            sig.connect(lambda *_: self.changed.emit())

    def set_names(self, names: tuple[str, ...]) -> None:
        """The keypoint types of the captured model (keeps the pick when it still exists)."""
        keep = self.keypoint.currentIndex()
        self.keypoint.blockSignals(True)
        self.keypoint.clear()
        for i, n in enumerate(names):
            self.keypoint.addItem(n, i)
        self.keypoint.setCurrentIndex(keep if 0 <= keep < len(names) else 0)
        self.keypoint.blockSignals(False)

    def picked(self) -> int:
        return max(self.keypoint.currentIndex(), 0)

    def clear(self) -> None:
        """No person drawn: the last one's maps and numbers go."""
        self.gallery.set_rgba(None)
        self.info.setText("Click a person on the image.")

    def as_probs(self) -> bool:
        return self.show_as.currentData() != "logits"


class VotesTab(QWidget):
    """Pixel Consensus Voting: the vote source, the table, the accumulator, back-projected
    instances and, on hover, one pixel's vote distribution painted on the table."""

    changed = Signal()  # unit, threshold or source: the accumulator must be rebuilt
    displayChanged = Signal()  # accumulator vs instances: only a redraw

    #: default peak thresholds: soft PCV votes on a stride-4 grid vs one-hot pseudo-votes at 4 px/unit
    PCV_THRESHOLD, PSEUDO_THRESHOLD = 1.0, 3.0

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = FocusComboBox()
        self.source.setToolTip("Whose votes: the PCV model's voting head, or pseudo-votes derived from an "
                               "instance model's masks (each mask pixel votes for its mask's centroid).")
        self.table = SmallHeatmap("voting table")
        self.table.setMinimumSize(110, 110)  # two side by side fit the dock's ~260 px column
        self.dist = SmallHeatmap("vote distribution")
        self.dist.setMinimumSize(110, 110)
        self.unit = FocusSpinBox()
        self.unit.setRange(1, 16)
        self.unit.setValue(4)
        self.unit.setSuffix(" px per table unit")
        self.threshold = FocusDoubleSpinBox()
        self.threshold.setRange(0.05, 1000.0)
        self.threshold.setValue(self.PCV_THRESHOLD)
        self.threshold.setSingleStep(0.25)
        self.show_what = FocusComboBox()
        self.show_what.addItems(["accumulator heatmap", "back-projected instances"])
        self.info = text_label("")
        self.hover = text_label("")
        form = QFormLayout()
        form.addRow("Votes from", self.source)
        form.addRow("Unit", self.unit)
        form.addRow("Peak threshold", self.threshold)
        form.addRow("Show", self.show_what)
        pics = QHBoxLayout()
        pics.addWidget(self.table)
        pics.addWidget(self.dist)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(text_label("The 9 x 9 table (17 cells; the centre is the voting pixel), and the hovered "
                             "pixel's votes on it"))
        lay.addLayout(pics)
        lay.addWidget(self.hover)
        lay.addWidget(self.info)
        lay.addStretch(1)
        self._last_source: str | None = None
        self._thresholds: dict[bool, float] = {True: self.PCV_THRESHOLD, False: self.PSEUDO_THRESHOLD}
        self.unit.valueChanged.connect(lambda *_: self.changed.emit())
        self.threshold.valueChanged.connect(self._on_threshold)
        self.source.currentIndexChanged.connect(self._on_source)
        self.show_what.currentIndexChanged.connect(lambda *_: self.displayChanged.emit())

    def source_key(self) -> str | None:
        """The picked source: "pcv" or an instance result's name (None when there is none)."""
        data = self.source.currentData()
        return None if data is None else str(data)

    def show_instances(self) -> bool:
        return self.show_what.currentIndex() == 1

    def set_sources(self, items: list[tuple[str, str]]) -> bool:
        """``(label, key)`` pairs; keeps the current pick when it is still offered. True when the
        pick changed (``changed`` was emitted)."""
        keep = self.source_key()
        self.source.blockSignals(True)
        self.source.clear()
        for label, key in items:
            self.source.addItem(label, key)
        i = self.source.findData(keep) if keep is not None else -1
        self.source.setCurrentIndex(i if i >= 0 else 0)
        self.source.blockSignals(False)
        moved = self.source_key() != keep
        self._sync(emit=moved)
        return moved

    def _on_source(self, *_: object) -> None:
        self._sync(emit=True)

    def _sync(self, emit: bool) -> None:
        """The unit belongs to the model for PCV (its cell size); each kind keeps its threshold."""
        key = self.source_key()
        pcv = key == "pcv"
        self.unit.setEnabled(not pcv)
        if key != self._last_source and key is not None:
            self._last_source = key
            self.threshold.blockSignals(True)
            self.threshold.setValue(self._thresholds[pcv])
            self.threshold.blockSignals(False)
        if emit:
            self.changed.emit()

    def _on_threshold(self, v: float) -> None:
        self._thresholds[self.source_key() == "pcv"] = float(v)
        self.changed.emit()


class FCNTab(QWidget):
    """The FCN's 32s / 16s / 8s predictions, one at a time, with mean IoU when GT exists."""

    stageChanged = Signal(str)
    requested = Signal()

    def __init__(self, stages: tuple[str, ...] = ("32s", "16s", "8s"), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.group = QButtonGroup(self)
        self.buttons: dict[str, QRadioButton] = {}
        row = QHBoxLayout()
        for s in stages:
            b = QRadioButton(f"FCN-{s}")
            self.group.addButton(b)
            self.buttons[s] = b
            row.addWidget(b)
            b.toggled.connect(lambda on, s=s: on and self.stageChanged.emit(s))
        self.run = QPushButton("Compute stages")
        self.info = text_label("")
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.run)
        lay.addWidget(self.info)
        lay.addStretch(1)
        self.run.clicked.connect(self.requested.emit)

    def stage(self) -> str | None:
        return next((s for s, b in self.buttons.items() if b.isChecked()), None)

    def clear_stage(self) -> None:
        """No stage picked (exclusive buttons uncheck only while the group is not exclusive)."""
        self.group.setExclusive(False)
        for b in self.buttons.values():
            b.setChecked(False)
        self.group.setExclusive(True)


def fit_narrow(widget: QWidget, chars: int = 10) -> None:
    """Let a view fit the dock's narrow column (about 260 px) instead of scrolling sideways: combo
    boxes size to ``chars`` characters (long items elide in the closed box, show whole in the list)
    and form rows put a label above its field when both do not fit side by side."""
    for combo in widget.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(chars)
        combo.updateGeometry()
    for form in widget.findChildren(QFormLayout):
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.invalidate()


class InternalsPanel(QWidget):
    """The dock's content: a message line above the tabs.

    Each tab declares the capture kinds it draws; :meth:`set_offered` shows the tabs whose kinds
    the current model's pass offers (a tab with no kinds, such as the votes and FCN tabs, which
    pick their own model, is always listed). View modules add theirs with :meth:`add_view`.
    """

    #: the built-in tabs: key, title, capture kinds
    BUILTIN = (("roi", "RoI", ("roi",)), ("rpn", "RPN && NMS", ("rpn",)), ("mask", "Mask head", ("mask_logits",)),
               ("votes", "Votes", ()), ("fcn", "FCN stages", ()))

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = text_label("")
        self.message.setStyleSheet("color: #d0a040;")
        self.status = text_label("")
        self.tabs = QTabWidget()
        self.roi, self.rpn, self.mask = RoITab(), RPNTab(), MaskTab()
        self.votes, self.fcn = VotesTab(), FCNTab()
        self.keys: list[str] = []
        self.view_kinds: dict[str, tuple[str, ...]] = {}
        widgets = {"roi": self.roi, "rpn": self.rpn, "mask": self.mask, "votes": self.votes, "fcn": self.fcn}
        for key, title, kinds in self.BUILTIN:
            self.add_view(key, title, widgets[key], kinds)
        lay = QVBoxLayout(self)
        lay.addWidget(self.status)
        lay.addWidget(self.message)
        lay.addWidget(self.tabs, 1)

    def add_view(self, key: str, title: str, widget: QWidget, kinds: tuple[str, ...]) -> int:
        """Add a view's tab (listed only while the current model offers ``kinds``)."""
        if key in self.keys:
            raise ValueError(f"an Internals view named {key!r} exists already")
        self.keys.append(key)
        self.view_kinds[key] = tuple(kinds)
        fit_narrow(widget)
        i = self.tabs.addTab(widget, title)
        if kinds and not set(kinds) & {"roi", "rpn", "mask_logits"}:
            self.tabs.setTabVisible(i, False)  # a new family's tab waits until its model is captured
        return i

    def set_offered(self, kinds: tuple[str, ...] | set[str], prefer: str | None = None) -> None:
        """List the tabs whose capture kinds are all in ``kinds``; stay on a listed tab, else go to
        ``prefer`` (the model's own view) or the first listed view."""
        offered = set(kinds)
        self.roi.offer_mask_head("mask_logits" in offered)
        was = max(self.tabs.currentIndex(), 0)
        for i, key in enumerate(self.keys):
            need = self.view_kinds[key]
            self.tabs.setTabVisible(i, not need or set(need) <= offered)
        if not self.tabs.isTabVisible(was):  # Qt moved on to a neighbour; go to the model's own view
            listed = [i for i, k in enumerate(self.keys) if self.view_kinds[k] and self.tabs.isTabVisible(i)]
            first = next((i for i in listed if self.keys[i] == prefer), listed[0] if listed else None)
            if first is not None:
                self.tabs.setCurrentIndex(first)

    def tab_name(self) -> str:
        return self.keys[max(self.tabs.currentIndex(), 0)]
