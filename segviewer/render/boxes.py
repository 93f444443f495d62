"""Boxes: outlines drawn *inside* each box with plain slicing (no anti-aliasing).

Box edges are continuous coordinates (see ``core/results.py``); the box ``[x0, x1)`` covers the
pixels ``floor(x0) .. ceil(x1) - 1`` (at least one). The outline is ``style.line_width`` output
pixels wide and lies inside that span, so a box drawn on a layer and a box drawn straight onto
the image give the same pixels, and nothing is partly transparent (no premultiplication trouble).
Drawing is clipped to the canvas, so boxes far outside a window cost nothing but a comparison.
"""

from __future__ import annotations

import cv2
import numpy as np

from segviewer.core.results import Detections
from segviewer.render.layers import Viewport
from segviewer.render.masks import paint_order
from segviewer.render.style import RenderStyle, detection_colors

__all__ = ["box_pixels", "fill_rect", "draw_boxes", "boxes_layer"]


def box_pixels(boxes: np.ndarray, vp: Viewport) -> np.ndarray:
    """``(N, 4)`` int64 output pixel spans ``[X0, X1) x [Y0, Y1)`` of xyxy image boxes."""
    sx, sy = vp.scale
    x0, y0 = vp.window[0], vp.window[1]
    b = (np.asarray(boxes, np.float64).reshape(-1, 4) - (x0, y0, x0, y0)) * (sx, sy, sx, sy)
    lo = np.floor(b[:, :2])
    out = np.concatenate([lo, np.maximum(np.ceil(b[:, 2:]), lo + 1)], axis=1)
    # Clamp far-out values so int conversion is safe; drawing clips to the canvas anyway.
    big = 4 * max(vp.out_size) + 16
    return np.clip(out, -big, big, out=out).astype(np.int64)


def fill_rect(canvas: np.ndarray, x0: int, y0: int, x1: int, y1: int, color: np.ndarray) -> None:
    """Fill ``[x0, x1) x [y0, y1)`` clipped to the canvas."""
    h, w = canvas.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x0 < x1 and y0 < y1:
        canvas[y0:y1, x0:x1] = color


def draw_boxes(canvas: np.ndarray, spans: np.ndarray, colors: np.ndarray, width: int,
               order: np.ndarray | None = None) -> None:
    """Draw box outlines ``width`` pixels wide inside ``spans`` (from :func:`box_pixels`).

    ``colors`` has one row per box with the canvas' channel count (RGB or RGBA). The band is
    drawn as ``width`` nested one-pixel rectangles (``cv2.rectangle`` with ``LINE_8`` covers
    exactly the outer pixel ring of its corners, clipped to the canvas).
    """
    h, w = canvas.shape[:2]
    sp = spans.tolist()
    cols = colors.tolist()
    for i in range(len(sp)) if order is None else order.tolist():
        bx0, by0, bx1, by1 = sp[i]
        if bx1 <= 0 or by1 <= 0 or bx0 >= w or by0 >= h:
            continue
        c = cols[i]
        for k in range(width):
            if bx0 + k > bx1 - 1 - k or by0 + k > by1 - 1 - k:
                break
            cv2.rectangle(canvas, (bx0 + k, by0 + k), (bx1 - 1 - k, by1 - 1 - k), c, 1, cv2.LINE_8)


def rgba_colors(dets: Detections, style: RenderStyle) -> np.ndarray:
    """Detection colors with an opaque alpha column, for drawing on a layer."""
    rgb = detection_colors(dets, style)
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


def boxes_layer(dets: Detections, style: RenderStyle, vp: Viewport) -> np.ndarray:
    """The RGBA box layer of ``dets`` for a viewport."""
    out = vp.blank()
    draw_boxes(out, box_pixels(dets.boxes, vp), rgba_colors(dets, style), style.line_width,
               paint_order(dets.scores))
    return out


def draw_boxes_rgb(image: np.ndarray, dets: Detections, style: RenderStyle,
                   spans: np.ndarray | None = None, colors: np.ndarray | None = None) -> None:
    """Draw the box layer straight onto an RGB image (the export path at opacity 1).

    ``spans`` (:func:`box_pixels` at full size) and ``colors`` may be passed when already known.
    """
    if spans is None:
        spans = box_pixels(dets.boxes, Viewport.make(dets.image_size))
    if colors is None:
        colors = detection_colors(dets, style)
    draw_boxes(image, spans, colors, style.line_width, paint_order(dets.scores))
