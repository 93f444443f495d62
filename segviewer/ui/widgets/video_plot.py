"""Per-frame cost and agreement of Deep Feature Flow, under the timeline: milliseconds per frame
(key frames as red dots, propagated ones blue) above, agreement with the whole model (mIoU, %)
below, x linked, a line at the current frame. Clicking a point asks for that frame."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

__all__ = ["VideoPlot"]


class VideoPlot(pg.GraphicsLayoutWidget):
    """Two linked plots fed with readouts (objects with index, is_key, total, agreement)."""

    frameClicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(120)  # the dock sits under the image: a short plot leaves it room
        self.time_plot = self.addPlot(row=0, col=0)
        self.time_plot.setLabel("left", "ms")  # short: the plots are short and the labels stand on end
        self.time_plot.showGrid(y=True, alpha=0.25)
        self.agree_plot = self.addPlot(row=1, col=0)
        self.agree_plot.setLabel("left", "agree %")
        self.agree_plot.setLabel("bottom", "frame")
        self.agree_plot.setYRange(0, 100)
        self.agree_plot.setXLink(self.time_plot)
        for p in (self.time_plot, self.agree_plot):
            p.setMouseEnabled(x=True, y=False)
            p.hideButtons()
        self.time_curve = self.time_plot.plot(pen=pg.mkPen(150, 150, 150))
        self.key_dots = self.time_plot.plot(pen=None, symbol="o", symbolSize=7, symbolBrush=(230, 70, 60),
                                            symbolPen=None, name="key")
        self.prop_dots = self.time_plot.plot(pen=None, symbol="o", symbolSize=5, symbolBrush=(80, 170, 255),
                                             symbolPen=None, name="propagated")
        self.agree_curve = self.agree_plot.plot(pen=pg.mkPen(120, 200, 120), symbol="o", symbolSize=4,
                                                symbolBrush=(120, 200, 120), symbolPen=None)
        self.key_lines: list[pg.InfiniteLine] = []
        self.cursors = [pg.InfiniteLine(0, angle=90, pen=pg.mkPen(255, 220, 0)) for _ in range(2)]
        self.time_plot.addItem(self.cursors[0])
        self.agree_plot.addItem(self.cursors[1])
        for item in (self.key_dots, self.prop_dots):
            item.sigPointsClicked.connect(self._on_click)
        self.n_points = 0

    def set_frames(self, n: int) -> None:
        self.time_plot.setXRange(0, max(n - 1, 1), padding=0.02)

    def set_readouts(self, readouts: Sequence[Any]) -> None:
        """Redraw from scratch (a few hundred points: cheaper than bookkeeping)."""
        rs = sorted(readouts, key=lambda r: r.index)
        self.n_points = len(rs)
        x = np.array([r.index for r in rs], float)
        ms = np.array([1000.0 * r.total for r in rs], float)
        key = np.array([r.is_key for r in rs], bool)
        self.time_curve.setData(x, ms)
        # from zero, so a few equal times read as a flat line, not as ticks crowded 0.2 ms apart
        self.time_plot.setYRange(0.0, max(float(ms.max()) * 1.1 if len(ms) else 0.0, 1.0), padding=0)
        self.key_dots.setData(x[key], ms[key])
        self.prop_dots.setData(x[~key], ms[~key])
        ag = [(r.index, 100.0 * r.agreement) for r in rs if r.agreement is not None]
        a = np.array(ag, float).reshape(-1, 2)
        self.agree_curve.setData(a[:, 0], a[:, 1])
        for line in self.key_lines:
            self.agree_plot.removeItem(line)
        self.key_lines = []
        for k in x[key]:
            line = pg.InfiniteLine(k, angle=90, pen=pg.mkPen(230, 70, 60, 90))
            self.agree_plot.addItem(line)
            self.key_lines.append(line)

    def set_current(self, index: int) -> None:
        for c in self.cursors:
            c.setValue(index)

    def _on_click(self, _item: object, points: Sequence[Any], *_: object) -> None:
        if len(points):
            self.frameClicked.emit(int(round(points[0].pos().x())))
