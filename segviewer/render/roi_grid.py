"""Grids, anchors, boxes and sample points as line segments, and those segments rasterised to RGBA.

Why segments: the canvas draws thousands of grid lines as *one* path (pyqtgraph ``connect='pairs'``)
rather than thousands of items, and the exporter must draw the same thing. Segments are
``(N, 2, 2)`` float32 arrays: N segments, two endpoints, ``(x, y)`` in continuous image
coordinates (pixel ``(r, c)`` covers ``[c, c + 1) x [r, r + 1)``). For pyqtgraph, flatten them
with :func:`to_pairs`. Geometry from :mod:`segviewer.analysis.roi_align` lives in the *model's*
coordinates (the resized image the network saw); pass ``scale = (sx, sy)`` (image pixels per model
pixel) to land on the displayed image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segviewer.analysis.roi_align import RoIAlignGrid, RoIPoolGrid
from segviewer.core.errors import SegviewerError

__all__ = [
    "box_segments", "grid_segments", "cross_segments", "scale_segments", "to_pairs",
    "roi_align_segments", "roi_pool_segments", "rasterize_segments", "rasterize_points",
]

_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel endpoints at 1/16 px


def _seg(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, np.float32).reshape(-1, 2, 2))


def box_segments(boxes: np.ndarray) -> np.ndarray:
    """``(4N, 2, 2)``: the four edges of each xyxy box (top, right, bottom, left)."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    corners = np.stack([np.stack([x0, y0], -1), np.stack([x1, y0], -1),
                        np.stack([x1, y1], -1), np.stack([x0, y1], -1)], 1)  # (N, 4, 2)
    return _seg(np.stack([corners, np.roll(corners, -1, axis=1)], 2))


def grid_segments(xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray) -> np.ndarray:
    """A rectilinear grid: one vertical segment per x in ``xs`` spanning ``ys[0]..ys[-1]`` and one
    horizontal segment per y spanning ``xs[0]..xs[-1]``."""
    xs, ys = np.asarray(xs, np.float32).ravel(), np.asarray(ys, np.float32).ravel()
    if xs.size < 2 or ys.size < 2:
        raise SegviewerError("A grid needs at least two lines in each direction.")
    v = np.stack([np.stack([xs, np.full_like(xs, ys[0])], 1), np.stack([xs, np.full_like(xs, ys[-1])], 1)], 1)
    h = np.stack([np.stack([np.full_like(ys, xs[0]), ys], 1), np.stack([np.full_like(ys, xs[-1]), ys], 1)], 1)
    return _seg(np.concatenate([v, h]))


def cross_segments(points: np.ndarray, size: float = 2.0) -> np.ndarray:
    """``(2M, 2, 2)``: a small ``+`` of half-length ``size`` at each ``(x, y)`` point."""
    p = np.asarray(points, np.float32).reshape(-1, 2)
    dx, dy = np.array([size, 0], np.float32), np.array([0, size], np.float32)
    return _seg(np.stack([np.stack([p - dx, p + dx], 1), np.stack([p - dy, p + dy], 1)], 1))


def scale_segments(segments: np.ndarray, scale: tuple[float, float] = (1.0, 1.0),
                   offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """``segments * (sx, sy) + offset``: model coordinates -> displayed image coordinates."""
    s = _seg(segments)
    return _seg(s * np.asarray(scale, np.float32) + np.asarray(offset, np.float32))


def to_pairs(segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` arrays of length 2N for ``pyqtgraph.PlotCurveItem(x, y, connect='pairs')``."""
    s = _seg(segments).reshape(-1, 2)
    return s[:, 0].copy(), s[:, 1].copy()


def roi_align_segments(grid: RoIAlignGrid, scale: tuple[float, float] = (1.0, 1.0),
                       point_size: float = 1.5) -> dict[str, np.ndarray]:
    """What the RoIAlign view draws, in displayed image coordinates.

    * ``bins``: the PH x PW bin grid (segments);
    * ``points``: ``(M, 2)`` valid sample points; ``crosses``: them as small ``+`` segments;
    * ``cells``: outlines of the feature cells read with non-zero weight (segments);
    * ``links``: a segment from every valid sample point to the centre of each of its four cells,
      with ``link_weights`` (M * 4,) the bilinear weight, to use as opacity.
    """
    sx, sy = scale
    xs, ys = grid.bin_edges_image()
    pts = grid.points_image()[grid.valid].reshape(-1, 2)
    cells = grid.cells[grid.valid].reshape(-1, 4, 2)
    w = grid.weights[grid.valid].reshape(-1, 4)
    centers = (cells[..., ::-1].astype(np.float64) + 0.5) * grid.stride  # (row, col) -> (x, y) centres
    links = np.stack([np.repeat(pts[:, None, :], 4, 1), centers], 2).reshape(-1, 2, 2)
    s = (sx, sy)
    return {
        "bins": scale_segments(grid_segments(xs, ys), s),
        "points": (pts * np.asarray(s)).astype(np.float32),
        "crosses": cross_segments(pts * np.asarray(s), point_size),
        "cells": scale_segments(box_segments(grid.cell_boxes_image()), s),
        "links": scale_segments(links, s),
        "link_weights": w.reshape(-1).astype(np.float32),
        "box": scale_segments(box_segments(grid.box[None]), s),
    }


def roi_pool_segments(grid: RoIPoolGrid, scale: tuple[float, float] = (1.0, 1.0)) -> dict[str, np.ndarray]:
    """What the RoIPool view draws: the exact ``box``, the snapped ``region`` and the quantised
    ``bins`` (each bin's outline; neighbouring bins may overlap by a cell)."""
    s = (scale[0], scale[1])
    bins = grid.bins_image().reshape(-1, 4)
    nonempty = (bins[:, 2] > bins[:, 0]) & (bins[:, 3] > bins[:, 1])
    return {
        "box": scale_segments(box_segments(grid.box[None]), s),
        "region": scale_segments(box_segments(grid.region_image()[None]), s),
        "bins": scale_segments(box_segments(bins[nonempty]), s),
    }


def _canvas(size: tuple[int, int]) -> tuple[int, int]:
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise SegviewerError(f"The output size must be positive; got {h}x{w}.")
    return h, w


def _rgba(mask: np.ndarray, color: np.ndarray | tuple[int, int, int], alpha: int) -> np.ndarray:
    out = np.zeros((*mask.shape[:2], 4), np.uint8)
    out[..., :3] = np.asarray(color, np.uint8)
    out[..., 3] = (mask.astype(np.uint16) * int(np.clip(alpha, 0, 255)) // 255).astype(np.uint8)
    return out


def rasterize_segments(segments: np.ndarray, size: tuple[int, int], color: tuple[int, int, int] = (255, 255, 0),
                       alpha: int = 255, thickness: int = 1, antialias: bool = False,
                       colors: np.ndarray | None = None, weights: np.ndarray | None = None) -> np.ndarray:
    """Draw segments into a straight-alpha RGBA ``(H, W, 4)`` uint8 layer (for export).

    Segment endpoints are continuous coordinates; a segment along ``y = r + 0.5`` lands on pixel
    row ``r``. ``colors`` (N, 3) gives each segment its own color, ``weights`` (N,) in [0, 1] its
    own opacity (e.g. bilinear weights); otherwise one ``color`` for all.
    """
    import cv2

    h, w = _canvas(size)
    s = _seg(segments)
    if thickness < 1:
        raise SegviewerError(f"Line thickness must be at least 1 pixel; got {thickness}.")
    line = cv2.LINE_AA if antialias else cv2.LINE_8
    # continuous -> OpenCV pixel-centre coordinates, in 1/16 px fixed point
    fx = np.round((s - 0.5) * (1 << _SHIFT))
    fx = np.clip(fx, -(1 << 28), 1 << 28).astype(np.int32)
    if colors is None and weights is None:
        mask = np.zeros((h, w), np.uint8)
        if len(fx):
            cv2.polylines(mask, list(fx), False, 255, thickness, line, _SHIFT)
        return _rgba(mask, color, alpha)
    cols = np.broadcast_to(np.asarray(color if colors is None else colors, np.uint8).reshape(-1, 3), (len(s), 3))
    wts = np.ones(len(s)) if weights is None else np.clip(np.asarray(weights, np.float64).ravel(), 0, 1)
    if len(cols) != len(s) or len(wts) != len(s):
        raise SegviewerError(f"{len(s)} segments need as many colors and weights; got {len(cols)} and {len(wts)}.")
    rgb = np.zeros((h, w, 3), np.uint8)
    a = np.zeros((h, w), np.uint8)
    for (p, q), c, wt in zip(fx, cols, wts):  # later segments paint over earlier ones
        av = int(round(wt * alpha))
        if av <= 0:
            continue
        cv2.line(rgb, tuple(int(v) for v in p), tuple(int(v) for v in q), tuple(int(v) for v in c), thickness, line, _SHIFT)
        cv2.line(a, tuple(int(v) for v in p), tuple(int(v) for v in q), av, thickness, line, _SHIFT)
    return np.dstack([rgb, a])


def rasterize_points(points: np.ndarray, size: tuple[int, int], color: tuple[int, int, int] = (255, 64, 64),
                     radius: int = 2, alpha: int = 255) -> np.ndarray:
    """Filled dots of ``radius`` pixels at ``(x, y)`` points, as an RGBA layer."""
    import cv2

    h, w = _canvas(size)
    mask = np.zeros((h, w), np.uint8)
    p = np.asarray(points, np.float64).reshape(-1, 2)
    fx = np.clip(np.round((p - 0.5) * (1 << _SHIFT)), -(1 << 28), 1 << 28).astype(np.int64)
    for x, y in fx:
        cv2.circle(mask, (int(x), int(y)), int(radius) << _SHIFT, 255, -1, cv2.LINE_8, _SHIFT)
    return _rgba(mask, color, alpha)
