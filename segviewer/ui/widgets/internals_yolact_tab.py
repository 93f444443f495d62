"""The Internals dock's YOLACT tab: plain widgets with signals (the view module fills them).

A detection picker, the k prototypes of the image as one gallery picture, the picked detection's
k coefficients as signed bars (bar i under prototype i's index), and the mask assembly as four
small images (``P c``, the sigmoid, the crop to the box, the threshold), each captioned with its
size. The view module (``ui/features/_internals_yolact.py``) fills them.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from segviewer.ui.widgets.controls import FocusComboBox
from segviewer.ui.widgets.internals_tabs import SmallHeatmap, text_label

__all__ = ["Gallery", "SignedBars", "StepImage", "YolactTab", "STEP_KEYS"]

#: the four assembly steps, in order: key -> caption stem
STEP_KEYS = (("linear", "P c"), ("sigmoid", "σ(P c)"), ("crop", "crop to the box"), ("mask", "≥ 0.5"))


class SignedBars(QWidget):
    """Vertical bars from a zero line, one per value in ``[-1, 1]`` (a detection's coefficients),
    each labelled with its index below; positive red, negative blue (the colours of ``P c``)."""

    HEIGHT = 96

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values = np.zeros(0, np.float32)
        self.highlight: int | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(self.HEIGHT)

    def set_values(self, values: np.ndarray | None, highlight: int | None = None) -> None:
        self.values = np.zeros(0, np.float32) if values is None else np.asarray(values, np.float32).ravel().copy()
        self.highlight = highlight
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(240, self.HEIGHT)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(120, self.HEIGHT)

    def paintEvent(self, _ev: object) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        text = self.palette().color(QPalette.ColorRole.WindowText)
        n = len(self.values)
        label_h, left = 13, 22
        w, h = self.width(), self.height()
        top, bottom = 4, h - label_h - 2
        mid = (top + bottom) / 2
        half = (bottom - top) / 2
        p.setPen(QColor(150, 150, 150))
        for v, y in ((1, top), (0, mid), (-1, bottom)):
            p.drawText(QRectF(0, y - 7, left - 3, 14), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       f"{v:+d}" if v else "0")
        p.drawLine(left, int(round(mid)), w - 1, int(round(mid)))
        if n:
            step = (w - left) / n
            font = p.font()
            font.setPointSizeF(max(font.pointSizeF() * 0.8, 6.0))
            p.setFont(font)
            wide = p.fontMetrics().horizontalAdvance(str(n - 1)) + 3
            every = max(1, int(np.ceil(wide / step)))  # a narrow dock: every other index under its bar
            for i, v in enumerate(self.values):
                x = left + i * step
                bh = half * float(np.clip(v, -1.0, 1.0))
                colour = QColor(215, 60, 50) if v >= 0 else QColor(50, 100, 215)
                if i == self.highlight:
                    colour = QColor(255, 200, 0)
                y0, y1 = (mid - bh, mid) if bh >= 0 else (mid, mid - bh)
                p.fillRect(QRectF(x + 1, y0, max(step - 2, 1.0), max(y1 - y0, 1.0)), colour)
                p.setPen(text if i != self.highlight else QColor(200, 120, 0))
                if i % every == 0:
                    p.drawText(QRectF(x - 2, bottom + 1, step + 4, label_h), Qt.AlignmentFlag.AlignHCenter, str(i))
        p.end()


class StepImage(SmallHeatmap):
    """A small heatmap with an optional frame drawn over it (the box on the prototype-resolution
    maps, in their cells): the frame is an item, so the picture stays the step's exact colours."""

    def __init__(self, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.setMinimumSize(100, 90)
        self.setMaximumHeight(150)
        self.frame = pg.PlotCurveItem(pen=pg.mkPen((255, 255, 255), width=1.5, cosmetic=True))
        self.frame.setZValue(10)
        self.vb.addItem(self.frame)
        self.rgba: np.ndarray | None = None

    def set_rgba(self, rgba: np.ndarray | None, frame: tuple[float, float, float, float] | None = None,
                 colour: tuple[int, int, int] = (255, 255, 255)) -> None:
        self.rgba = rgba
        self.set_frame(frame, colour)
        super().set_rgba(rgba)

    def set_frame(self, frame: tuple[float, float, float, float] | None,
                  colour: tuple[int, int, int] = (255, 255, 255)) -> None:
        """``(x0, y0, x1, y1)`` in the picture's pixels (None: no frame), in ``colour``."""
        if frame is None:
            self.frame.setData([], [])
            self.frame.setVisible(False)
            return
        x0, y0, x1, y1 = frame
        self.frame.setPen(pg.mkPen(colour, width=1.5, cosmetic=True))
        self.frame.setData([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0])
        self.frame.setVisible(True)


class Gallery(SmallHeatmap):
    """The prototype gallery: as tall as its picture at the dock's width (height for width), so the
    tiles and their names use the whole column however wide the dock is."""

    def __init__(self, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.aspect = 1.0  # picture height / width
        self.setMinimumSize(120, 120)
        pol = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        pol.setHeightForWidth(True)
        self.setSizePolicy(pol)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt's name
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt's name
        return int(min(max(width * self.aspect, 120), 380))  # a wide dock: the assembly stays in view

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(250, self.heightForWidth(250))

    def set_rgba(self, rgba: np.ndarray | None) -> None:
        if rgba is not None and rgba.shape[1]:
            aspect = rgba.shape[0] / rgba.shape[1]
            if abs(aspect - self.aspect) > 1e-3:
                self.aspect = aspect
                self.updateGeometry()
        super().set_rgba(rgba)


class YolactTab(QWidget):
    """Detection picker, prototype gallery, coefficient bars, the four assembly steps."""

    changed = Signal()  # a display toggle: a redraw
    detectionPicked = Signal(int)  # the picker chose detection i (-1: none)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.detection = FocusComboBox()
        self.detection.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.detection.setMinimumContentsLength(10)
        self.detection.setToolTip("The detection whose coefficients and assembly are shown (or click its mask on the image).")
        self.per_tile = QCheckBox("each tile its own range")
        self.per_tile.setToolTip("Off: every prototype on one scale 0 .. the largest value (their sizes compare). "
                                 "On: each stretched to its own min .. max (weak prototypes show their shape).")
        self.show_mask = QCheckBox("assembled mask on the image")
        self.show_mask.setChecked(True)
        self.show_others = QCheckBox("the other detections' boxes")
        self.show_others.setChecked(True)
        form = QFormLayout()
        form.addRow("Detection", self.detection)
        self.counts = text_label("")
        self.gallery_title = text_label("")
        self.gallery = Gallery("prototypes")
        self.bars_title = text_label("")
        self.bars = SignedBars()
        self.steps: dict[str, StepImage] = {}
        self.captions: dict[str, QLabel] = {}
        grid = QGridLayout()  # 2 x 2: the dock is narrow
        grid.setHorizontalSpacing(4)
        for n, (key, stem) in enumerate(STEP_KEYS):
            img, cap = StepImage(stem), QLabel(stem)
            cap.setWordWrap(True)
            cap.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            cap.setMinimumWidth(60)
            self.steps[key], self.captions[key] = img, cap
            r, c = divmod(n, 2)
            grid.addWidget(cap, 2 * r, c)
            grid.addWidget(img, 2 * r + 1, c)
        self.info = text_label("Click a detection's mask on the image (or pick one above): its coefficients and "
                               "how its mask is assembled from the prototypes.")
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.counts)
        lay.addWidget(self.gallery_title)
        lay.addWidget(self.gallery)
        lay.addWidget(self.per_tile)
        lay.addWidget(self.bars_title)
        lay.addWidget(self.bars)
        lay.addWidget(text_label("<b>Assembly</b>: P c → sigmoid → crop to the box → threshold"))
        lay.addLayout(grid)
        lay.addWidget(self.info)
        lay.addWidget(self.show_mask)
        lay.addWidget(self.show_others)
        lay.addStretch(1)
        self.detection.currentIndexChanged.connect(self._on_pick)
        for box in (self.per_tile, self.show_mask, self.show_others):
            box.toggled.connect(lambda *_: self.changed.emit())
        self.clear()

    def set_detections(self, items: list[tuple[str, int]], current: int | None) -> None:
        """The picker's entries ``(label, index)`` and the one shown (no signal)."""
        self.detection.blockSignals(True)
        self.detection.clear()
        self.detection.addItem("(none)", -1)
        for label, i in items:
            self.detection.addItem(label, int(i))
        self.detection.blockSignals(False)
        self.select(current)

    def select(self, index: int | None) -> None:
        """Show ``index`` in the picker without announcing it (a canvas click chose it)."""
        self.detection.blockSignals(True)
        self.detection.setCurrentIndex(max(self.detection.findData(-1 if index is None else int(index)), 0))
        self.detection.blockSignals(False)

    def clear_detection(self) -> None:
        """No detection picked: bars and steps go."""
        self.bars_title.setText("")
        self.bars.set_values(None)
        self.bars.setVisible(False)
        for key, stem in STEP_KEYS:
            self.steps[key].set_rgba(None)
            self.captions[key].setText(stem)
        self.info.setText("Click a detection's mask on the image (or pick one above): its coefficients and "
                          "how its mask is assembled from the prototypes.")

    def clear(self) -> None:
        """No bundle: everything goes."""
        self.set_detections([], None)
        self.counts.setText("")
        self.gallery_title.setText("")
        self.gallery.set_rgba(None)
        self.clear_detection()

    def _on_pick(self, *_: object) -> None:
        data = self.detection.currentData()
        self.detectionPicked.emit(-1 if data is None else int(data))
