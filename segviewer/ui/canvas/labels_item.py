"""Detection tags drawn at a constant size on screen, whatever the zoom (as map viewers do).

A raster label layer is drawn in image pixels, so zooming in 4x made its text 4x larger and
zooming out made it unreadable. :class:`LabelsItem` instead paints each tag in *device* pixels
at its box's corner, mapped through the view's current transform at paint time: the tag's pixels
are :func:`segviewer.render.labels.tag_patch` (the same pixels an export draws at 100%) and its
place :func:`~segviewer.render.labels.place_tag` (on top of the box, or just inside it, kept on
the image). One item paints every tag of a layer, so a frame with a hundred labels is one item.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRect, QRectF
from PySide6.QtGui import QImage, QPainter, QTransform

from segviewer.render.labels import LabelTag, place_tag, tag_patch

__all__ = ["LabelsItem"]


def _qimage(rgb: np.ndarray) -> QImage:
    a = np.ascontiguousarray(rgb)
    return QImage(a.data, a.shape[1], a.shape[0], 3 * a.shape[1], QImage.Format.Format_RGB888).copy()


class LabelsItem(pg.GraphicsObject):
    """The tags of one labels layer, in image coordinates, painted in screen pixels."""

    def __init__(self) -> None:
        super().__init__()
        self._bounds = QRectF()
        self._tags: list[tuple[tuple[float, float, float, float], QImage]] = []

    def set_tags(self, tags: Sequence[LabelTag], style: object, image_size: tuple[int, int]) -> None:
        """Tags (in painting order) of an image of ``image_size = (h, w)``, drawn with ``style``."""
        self.prepareGeometryChange()
        h, w = image_size
        self._bounds = QRectF(0, 0, w, h)
        self._tags = [(t.box, _qimage(tag_patch(t.text, t.bg, t.fg, style))) for t in tags]  # type: ignore[arg-type]
        self.update()

    def clear(self) -> None:
        self.set_tags([], None, (0, 0))

    @property
    def count(self) -> int:
        return len(self._tags)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return QRectF(self._bounds)

    def placed(self, to_device: QTransform, visible: QRect) -> list[QRect | None]:
        """Each tag's rectangle in device pixels for a view transform (item -> device), or None
        for a box out of sight: at its box's top-left corner, the tag's own size in pixels, kept
        on the part of the image that ``visible`` (the view's rectangle in device pixels) shows,
        so a box seen zoomed in keeps its tag in view."""
        img = to_device.mapRect(self._bounds)
        cx0, cy0 = max(math.floor(img.left()), visible.left()), max(math.floor(img.top()), visible.top())
        cx1 = min(math.ceil(img.right()), visible.left() + visible.width())
        cy1 = min(math.ceil(img.bottom()), visible.top() + visible.height())
        out: list[QRect | None] = []
        for (x0, y0, x1, y1), qimg in self._tags:
            box = to_device.mapRect(QRectF(QPointF(x0, y0), QPointF(x1, y1)))
            if box.right() < cx0 or box.bottom() < cy0 or box.left() >= cx1 or box.top() >= cy1:
                out.append(None)
                continue
            bx, by = math.floor(box.left()) - cx0, math.floor(box.top()) - cy0
            x, y = place_tag(bx, by, qimg.width(), qimg.height(), max(cx1 - cx0, 1), max(cy1 - cy0, 1))
            out.append(QRect(cx0 + x, cy0 + y, qimg.width(), qimg.height()))
        return out

    def paint(self, p: QPainter, *_: object) -> None:
        if not self._tags:
            return
        vb = self.getViewBox()
        seen = vb.viewRect() if isinstance(vb, pg.ViewBox) else self._bounds  # item coords = view coords
        rects = self.placed(p.transform(), p.transform().mapRect(seen).toAlignedRect())
        p.save()
        p.resetTransform()
        for rect, (_box, qimg) in zip(rects, self._tags):
            if rect is not None:
                p.drawImage(rect.topLeft(), qimg)
        p.restore()
