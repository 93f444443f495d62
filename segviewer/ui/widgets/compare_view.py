"""Two results of one image side by side (pan and zoom synced) or as a swipe, in their own window.

Each side is the image with one run's layers composited by :func:`segviewer.render.compose.render_overlay`
(the export's look, the same as the canvas). Side by side: two views whose ranges are linked
(pyqtgraph's X/Y links), so dragging or zooming one moves the other. Swipe: one view, A left of
the handle and B right of it; the slider moves the handle (one numpy copy per move). Hover in
either view reports the image point, for the disagreement text.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QRadioButton, QSlider, QVBoxLayout, QWidget

__all__ = ["CompareView"]


class CompareView(QWidget):
    """A | B of one image (see the module docstring)."""

    hovered = Signal(object)  # (x, y) in image pixels, or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Compare A | B")
        self.a = self.b = None
        self._names = ("", "")
        self.glw = pg.GraphicsLayoutWidget()
        self.titles = (QLabel("A"), QLabel("B"))
        self.views: list[pg.ViewBox] = []
        self.items: list[pg.ImageItem] = []
        for col in range(2):
            vb = self.glw.addViewBox(row=0, col=col)
            vb.setAspectLocked(True)
            vb.invertY(True)
            item = pg.ImageItem(axisOrder="row-major")
            vb.addItem(item)
            self.views.append(vb)
            self.items.append(item)
        self.views[1].setXLink(self.views[0])  # one pan/zoom for both
        self.views[1].setYLink(self.views[0])
        self.side = QRadioButton("Side by side")
        self.swipe = QRadioButton("Swipe")
        self.side.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.side)
        group.addButton(self.swipe)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 1000)
        self.slider.setValue(500)
        self.slider.setEnabled(False)
        top = QHBoxLayout()
        top.addWidget(self.side)
        top.addWidget(self.swipe)
        top.addWidget(self.slider, 1)
        names = QHBoxLayout()
        names.addWidget(self.titles[0], 1)
        names.addWidget(self.titles[1], 1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(names)
        lay.addWidget(self.glw, 1)
        self.swipe.toggled.connect(self._mode)
        self.slider.valueChanged.connect(lambda _v: self._draw())
        self.glw.scene().sigMouseMoved.connect(self._on_move)
        self.resize(1000, 560)

    def set_pair(self, a_rgb: np.ndarray, b_rgb: np.ndarray, a_title: str, b_title: str) -> None:
        """Show A and B (RGB uint8 of the same size); the view keeps its zoom on the same size."""
        if a_rgb.shape != b_rgb.shape:
            raise ValueError(f"A is {a_rgb.shape} but B is {b_rgb.shape}")
        same = self.a is not None and self.a.shape == a_rgb.shape
        self.a, self.b = np.ascontiguousarray(a_rgb), np.ascontiguousarray(b_rgb)
        self._names = (a_title, b_title)
        self._set_titles()
        self._draw()
        if not same:
            h, w = a_rgb.shape[:2]
            self.views[0].setRange(xRange=(0, w), yRange=(0, h), padding=0.02)

    def swipe_split(self) -> int:
        """The column where B starts in swipe mode."""
        return 0 if self.a is None else int(round(self.slider.value() / 1000 * self.a.shape[1]))

    def shown(self, side: int) -> np.ndarray | None:
        """What view ``side`` (0, 1) shows now (for tests and screenshots)."""
        img = self.items[side].image
        return None if img is None else np.asarray(img)

    def _mode(self, swipe: bool) -> None:
        self.slider.setEnabled(swipe)
        self.views[1].setVisible(not swipe)
        self.titles[1].setVisible(not swipe)
        self._set_titles()
        self._draw()

    def _set_titles(self) -> None:
        a, b = self._names
        if self.swipe.isChecked():  # one view: say which side of the handle is which
            self.titles[0].setText(f"A (left of the handle): {a}   |   B (right): {b}")
        else:
            self.titles[0].setText(f"A: {a}")
        self.titles[1].setText(f"B: {b}")

    def _draw(self) -> None:
        if self.a is None or self.b is None:
            return
        if self.swipe.isChecked():
            x = self.swipe_split()
            out = self.a.copy()
            out[:, x:] = self.b[:, x:]
            if 0 < x < out.shape[1]:
                out[:, x - 1:x + 1] = (255, 255, 255)  # the handle
            self.items[0].setImage(out, levels=None)
        else:
            self.items[0].setImage(self.a, levels=None)
            self.items[1].setImage(self.b, levels=None)

    def _on_move(self, pos: Any) -> None:
        for vb in self.views:
            if vb.isVisible() and vb.sceneBoundingRect().contains(pos):
                p = vb.mapSceneToView(pos)
                self.hovered.emit((float(p.x()), float(p.y())))
                return
        self.hovered.emit(None)
