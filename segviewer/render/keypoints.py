"""Keypoints: skeleton lines in the detection's color, dots colored by keypoint index.

A keypoint is shown when its score (or COCO visibility flag) is above ``style.keypoint_min_score``;
a skeleton edge when both ends are shown. Lines and dots are drawn without anti-aliasing so the
layer keeps straight alpha (every drawn pixel is opaque).
"""

from __future__ import annotations

import cv2
import numpy as np

from segviewer.core.colors import category_palette
from segviewer.core.results import Detections
from segviewer.render.layers import Viewport
from segviewer.render.masks import paint_order
from segviewer.render.style import RenderStyle, detection_colors

__all__ = ["draw_keypoints", "keypoints_layer"]


def draw_keypoints(canvas: np.ndarray, dets: Detections, style: RenderStyle, vp: Viewport) -> None:
    """Draw the skeletons and keypoints of ``dets`` on an RGB or RGBA canvas of ``vp.out_size``."""
    if dets.keypoints is None or len(dets) == 0:
        return
    extra = [255] if canvas.shape[2] == 4 else []
    kp = dets.keypoints
    xs, ys = vp.to_out(kp[..., 0], kp[..., 1])
    big = 4 * max(vp.out_size) + 16  # keep far-away points representable as int
    px = np.clip(np.floor(xs), -big, big).astype(np.int64)
    py = np.clip(np.floor(ys), -big, big).astype(np.int64)
    shown = kp[..., 2] > style.keypoint_min_score
    colors = detection_colors(dets, style)
    dot_colors = category_palette(kp.shape[1])
    for i in paint_order(dets.scores):
        line = [int(v) for v in colors[i]] + extra
        for a, b in dets.skeleton:
            if a < kp.shape[1] and b < kp.shape[1] and shown[i, a] and shown[i, b]:
                cv2.line(canvas, (int(px[i, a]), int(py[i, a])), (int(px[i, b]), int(py[i, b])), line,
                         style.line_width, cv2.LINE_8)
        for k in np.flatnonzero(shown[i]):
            dot = [int(v) for v in dot_colors[k]] + extra
            cv2.circle(canvas, (int(px[i, k]), int(py[i, k])), style.keypoint_radius, dot, -1, cv2.LINE_8)


def keypoints_layer(dets: Detections, style: RenderStyle, vp: Viewport) -> np.ndarray:
    """The RGBA keypoint layer of ``dets`` for a viewport."""
    out = vp.blank()
    draw_keypoints(out, dets, style, vp)
    return out
