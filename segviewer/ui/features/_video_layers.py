"""The video feature's drawing: the frame's layers on the canvas (:class:`FrameLayers`), the
readout line, an RGBA array as a pixmap, arrow points."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPixmap

from segviewer.core.results import FlowField
from segviewer.render import flow as rflow
from segviewer.render.layers import render_layer
from segviewer.ui.features._video_engine import FrameReadout

__all__ = ["readout_text", "pixmap", "arrow_points", "frame_lines", "FrameLayers", "STAGES"]

STAGES = ("features", "flow", "warp", "task")


def readout_text(r: FrameReadout) -> str:
    """The one-line readout: key or propagated, time per stage, agreement."""
    kind = f"key frame ({r.reason})" if r.is_key else f"propagated from key frame {r.key_index}"
    parts = [f"{s} {1000 * r.times[s]:.1f}" for s in STAGES if s in r.times]
    agree = "" if r.agreement is None else f" · agreement with full model {100 * r.agreement:.1f}% mIoU"
    return f"Frame {r.index}: {kind} · ms: {', '.join(parts)} (total {1000 * r.total:.1f}){agree}"


def frame_lines(frame: np.ndarray, index: int, results: dict[str, Any], flow_uv: tuple[float, float] | None,
                x: float, y: float, waiting: str = "") -> list[str]:
    """The hover inspector's lines at (x, y) of video frame ``index``: pixel and colour, each
    result's class or instance there (a result at another size than the frame is read at the
    scaled point), the flow vector; ``waiting`` says why there is no result (yet)."""
    from segviewer.ui.display import inspect_point

    h, w = frame.shape[:2]
    same = {k: r for k, r in results.items() if tuple(r.image_size) == (h, w)}
    lines = inspect_point(frame, same, x, y)
    if not lines:
        return []
    for name, r in results.items():
        if name not in same:
            rh, rw = r.image_size
            lines += inspect_point(np.zeros((rh, rw, 3), np.uint8), {name: r}, x * rw / w, y * rh / h)[2:]
    lines.insert(0, f"frame {index}")
    if waiting:
        lines.append(waiting)
    if flow_uv is not None:
        lines.append(f"flow (u, v) = ({flow_uv[0]:+.2f}, {flow_uv[1]:+.2f}) px")
    return lines


def pixmap(rgba: np.ndarray) -> QPixmap:
    a = np.ascontiguousarray(rgba)
    img = QImage(a.data, a.shape[1], a.shape[0], 4 * a.shape[1], QImage.Format.Format_RGBA8888)
    return QPixmap.fromImage(img.copy())


def arrow_points(uv: np.ndarray, step: int, scale: float) -> np.ndarray:
    """Arrows (shafts and heads) as ``(2N, 2)`` points for one ``connect='pairs'`` curve."""
    seg = rflow.flow_arrows(uv, step, scale, 0.25)
    if len(seg):
        seg = np.concatenate([seg, rflow.arrow_heads(seg)], 0)
    return seg.reshape(-1, 2)


class FrameLayers:
    """The frame's own layers on the canvas: segmentation, tracked instances and their boxes, flow
    colour, magnitude and arrows (pyqtgraph items on ``vb``, above the photo, hidden until drawn)."""

    def __init__(self, vb: pg.ViewBox) -> None:
        self.seg_item = pg.ImageItem(axisOrder="row-major")
        self.color_item = pg.ImageItem(axisOrder="row-major")
        self.mag_item = pg.ImageItem(axisOrder="row-major")
        self.arrow_item = pg.PlotCurveItem(pen=pg.mkPen(255, 255, 255, 220, width=1), connect="pairs")
        self.inst_item = pg.ImageItem(axisOrder="row-major")
        self.box_item = pg.ImageItem(axisOrder="row-major")
        for z, (item, op) in enumerate(((self.seg_item, 0.5), (self.inst_item, 1.0), (self.box_item, 1.0),
                                        (self.color_item, 0.7), (self.mag_item, 0.7), (self.arrow_item, 1.0))):
            item.setZValue(50 + z)
            item.setOpacity(op)
            item.setVisible(False)
            vb.addItem(item)
        self.seg_rgba: np.ndarray | None = None
        self.inst_rgba: tuple[np.ndarray, np.ndarray] | None = None
        self.index = -1  # the frame the results below belong to
        self.result: Any = None  # its DFF SemanticMap
        self.instances: Any = None  # its tracked Detections
        self.flow: FlowField | None = None
        self.names = ("", "")  # how the inspector and legend name the two

    @property
    def items(self) -> tuple[Any, ...]:
        return (self.seg_item, self.inst_item, self.box_item, self.color_item, self.mag_item, self.arrow_item)

    def set_result(self, index: int, result: Any, instances: Any, flow: FlowField | None,
                   names: tuple[str, str] = ("segmentation", "instances")) -> None:
        """Frame ``index``'s DFF result, tracked instances (or None) and flow, rendered once here."""
        self.index, self.result, self.instances, self.flow, self.names = index, result, instances, flow, names
        self.seg_rgba = None if result is None else render_layer(result, "semantic")
        self.inst_rgba = None if instances is None else (render_layer(instances, "masks"),
                                                         render_layer(instances, "boxes"))

    def hide(self) -> None:
        """Forget the frame's layers (another frame is coming) and hide every item."""
        self.seg_rgba = self.inst_rgba = self.result = self.instances = self.flow = None
        self.index = -1
        for item in self.items:
            item.setVisible(False)

    def results(self, index: int, segmentation: bool = True) -> dict[str, Any]:
        """What is drawn on frame ``index``, by name (empty when the layers belong to another frame)."""
        if index < 0 or index != self.index:
            return {}
        out: dict[str, Any] = {}
        if self.result is not None and segmentation:
            out[self.names[0]] = self.result
        if self.instances is not None:
            out[self.names[1]] = self.instances
        return out

    def flow_at(self, index: int, x: float, y: float, size: tuple[int, int]) -> tuple[float, float] | None:
        """The flow vector (u, v) at frame point (x, y) of a frame of ``size``, if frame ``index`` has one."""
        if self.flow is None or index != self.index:
            return None
        uv = self.flow.uv
        h, w = uv.shape[:2]
        c, r = int(x * w / size[1]), int(y * h / size[0])
        if 0 <= c < w and 0 <= r < h:
            return float(uv[r, c, 0]), float(uv[r, c, 1])
        return None

    def draw(self, size: tuple[int, int], seg: bool, color: bool, mag: bool, arrows: bool,
             rim: float, arrow_step: int, arrow_scale: float) -> None:
        """Show what is switched on for a frame of ``size = (h, w)``; flow colours reach the wheel's
        rim at ``rim`` pixels."""
        h, w = size
        rect = QRectF(0, 0, w, h)
        on = self.seg_rgba is not None and seg
        if on:
            self.seg_item.setImage(self.seg_rgba, levels=None)
            self.seg_item.setRect(rect)
        self.seg_item.setVisible(on)
        for item, rgba in zip((self.inst_item, self.box_item), self.inst_rgba or (None, None)):
            if rgba is not None:
                item.setImage(rgba, levels=None)
                item.setRect(rect)
            item.setVisible(rgba is not None)
        uv = self.flow.uv if self.flow is not None else None
        if uv is not None and uv.shape[:2] != (h, w):
            from segviewer.analysis.flow import resize_flow

            uv = resize_flow(uv, (h, w))
        for want, item, fn in ((color, self.color_item, lambda f: rflow.flow_to_rgba(f, rim)),
                               (mag, self.mag_item, lambda f: rflow.magnitude_heatmap(f, rim))):
            on = uv is not None and want
            if on:
                item.setImage(fn(uv), levels=None)
                item.setRect(rect)
            item.setVisible(on)
        on = uv is not None and arrows
        if on:
            pts = arrow_points(uv, arrow_step, arrow_scale)
            self.arrow_item.setData(pts[:, 0], pts[:, 1], connect="pairs")
        self.arrow_item.setVisible(on)
