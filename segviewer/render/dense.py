"""Pixels for the one-stage dense-heads view: FCOS's l, t, r, b arrows and the anchor-assignment map.

Segments follow :mod:`segviewer.render.roi_grid` (``(N, 2, 2)`` float32, image coordinates);
maps are straight-alpha RGBA at the displayed image's size.
"""

from __future__ import annotations

import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.render.heatmap import resample_grid

__all__ = ["ltrb_arrow_segments", "ASSIGNMENT_COLORS", "assignment_rgba", "location_codes"]

#: negative (transparent grey), ignored (orange), positive (green): RetinaNet's three kinds
ASSIGNMENT_COLORS = {0: (128, 128, 128, 40), 1: (255, 160, 0, 170), 2: (40, 230, 90, 200)}


def ltrb_arrow_segments(center: tuple[float, float], ltrb: np.ndarray, head: float = 5.0) -> np.ndarray:
    """Four arrows from a location to the left, top, right and bottom sides of its box."""
    cx, cy = (float(v) for v in center)
    left, top, right, bottom = (float(v) for v in np.asarray(ltrb, np.float64).reshape(4))
    tips = [(cx - left, cy), (cx, cy - top), (cx + right, cy), (cx, cy + bottom)]
    segs = []
    for (tx, ty) in tips:
        segs.append(((cx, cy), (tx, ty)))
        dx, dy = tx - cx, ty - cy
        n = max(np.hypot(dx, dy), 1e-6)
        ux, uy = dx / n, dy / n
        for sgn in (1, -1):  # two barbs at +-30 degrees
            bx = tx - head * (ux * 0.866 - sgn * uy * 0.5)
            by = ty - head * (uy * 0.866 + sgn * ux * 0.5)
            segs.append(((tx, ty), (bx, by)))
    return np.asarray(segs, np.float32).reshape(-1, 2, 2)


def location_codes(matches: np.ndarray, grid: tuple[int, int], per_location: int) -> np.ndarray:
    """``(h, w)`` uint8 per location from per-anchor matcher codes: 2 if any anchor there is
    positive (>= 0), else 1 if any is ignored (-2), else 0 (all negative)."""
    h, w = (int(v) for v in grid)
    m = np.asarray(matches).reshape(h, w, int(per_location))
    return np.where((m >= 0).any(axis=2), 2, np.where((m == -2).any(axis=2), 1, 0)).astype(np.uint8)


def assignment_rgba(codes: np.ndarray, out_size: tuple[int, int],
                    extent: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """The per-location codes of :func:`location_codes` as an RGBA map over the image."""
    c = np.asarray(codes)
    if c.ndim != 2:
        raise SegviewerError(f"Assignment codes must be a 2-D grid; got shape {c.shape}.")
    v = resample_grid(c.astype(np.float32), out_size, extent)
    lut = np.zeros((4, 4), np.uint8)  # index 3: outside the grid, transparent
    for k, rgba in ASSIGNMENT_COLORS.items():
        lut[k] = rgba
    idx = np.where(np.isfinite(v), v, 3).astype(np.intp)
    return np.ascontiguousarray(lut[idx])
