"""A gallery of small maps (the mask head's class channels, Keypoint R-CNN's keypoint maps) as
one RGBA picture, each tile named, one tile framed.

Why one picture: the Internals dock shows dozens of 28 x 28 or 56 x 56 maps at once (91 COCO
classes, 17 keypoints); one image item draws in a millisecond where dozens of widgets would not,
and :func:`gallery_rgba` returns each tile's rectangle so a test can read back what was drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.render.heatmap import heatmap_rgba

__all__ = ["gallery_rgba", "gallery_columns"]

_LABEL_H = 14  # pixels of the name strip above each tile
_GAP = 4
_FRAME = (255, 210, 0, 255)
_PICKED = (255, 255, 255, 255)


def gallery_columns(n: int) -> int:
    """Columns for ``n`` tiles across a narrow dock: 3 up to 9 tiles (names stay readable), 4 up
    to 16, then about twice as wide as tall (91 COCO channels: 14 x 7)."""
    if n <= 9:
        return max(1, min(n, 3))
    return 4 if n <= 16 else int(np.ceil(np.sqrt(2 * n)))


def _colored(m: np.ndarray, vmin: float | None, vmax: float | None, cmap: str) -> np.ndarray:
    """``(K, h, w, 4)``: each map as ``heatmap_rgba(m[i], vmin, vmax, cmap, alpha=255)`` gives it,
    pixel for pixel, in one call (a per-tile loop cost ~1 ms a tile; 90 COCO channels twice)."""
    k, h, w = m.shape
    if vmin is not None and vmax is not None:  # one scale: the stacked maps normalise alike
        return heatmap_rgba(m.reshape(k * h, w), vmin, vmax, cmap, alpha=255).reshape(k, h, w, 4)
    # each tile its own range, with normalize's arithmetic (float32 maps, float64 range; NaN-free)
    flat = m.reshape(k, -1)
    lo = flat.min(1) if vmin is None else np.full(k, vmin, np.float32)
    hi = flat.max(1) if vmax is None else np.full(k, vmax, np.float32)
    lo64, hi64 = lo.astype(np.float64), hi.astype(np.float64)
    hi64 = np.where(hi64 <= lo64, lo64 + 1.0, hi64)  # a constant map shows the lowest color
    span = (hi64 - lo64).astype(np.float32)
    t = np.clip((m - lo.astype(np.float32)[:, None, None]) / span[:, None, None], 0, 1)
    return heatmap_rgba(t.reshape(k * h, w), 0.0, 1.0, cmap, alpha=255).reshape(k, h, w, 4)


def gallery_rgba(maps: np.ndarray, names: Sequence[str], highlight: int | None = None,
                 vmin: float | None = 0.0, vmax: float | None = 1.0, cmap: str = "viridis",
                 zoom: int = 3, columns: int | None = None, marks: np.ndarray | None = None,
                 picked: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(K, h, w)`` maps as tiles of ``zoom`` px per cell under their names (all on one color
    scale ``vmin..vmax``; None: each tile its own range), tile ``highlight`` framed in yellow,
    tile ``picked`` (another choice, e.g. the channel pasted on the image) in white.
    ``marks`` (``(K, 2)`` row, col in cells, NaN for none) puts a white cross on a cell of each
    tile (a keypoint's argmax). Returns the RGBA picture and ``(K, 4)`` int tile rectangles
    ``(x, y, w, h)`` in its pixels."""
    import cv2

    m = np.asarray(maps, np.float32)
    if m.ndim != 3 or m.shape[0] == 0:
        raise SegviewerError(f"A gallery needs (tiles, h, w) maps; got shape {m.shape}.")
    k, h, w = m.shape
    if len(names) != k:
        raise SegviewerError(f"{k} tiles but {len(names)} names.")
    z = max(1, int(zoom))
    cols = columns or gallery_columns(k)
    rows = -(-k // cols)
    th, tw = h * z, w * z
    cell_h, cell_w = th + _LABEL_H + _GAP, tw + _GAP
    out = np.zeros((rows * cell_h + _GAP, cols * cell_w + _GAP, 4), np.uint8)
    out[..., 3] = 255
    out[..., :3] = 32
    rects = np.zeros((k, 4), np.int64)
    tiles = _colored(m, vmin, vmax, cmap)
    tiles = np.repeat(np.repeat(tiles, z, 1), z, 2)
    for i in range(k):
        r, c = divmod(i, cols)
        x, y = _GAP + c * cell_w, _GAP + r * cell_h + _LABEL_H
        out[y: y + th, x: x + tw] = tiles[i]
        rects[i] = (x, y, tw, th)
        label = str(names[i])
        max_chars = max(3, tw // 6)
        label = label if len(label) <= max_chars else label[: max_chars - 1] + "…"
        color = (255, 210, 0) if i == highlight else (220, 220, 220)
        text = np.ascontiguousarray(out[y - _LABEL_H: y, x: x + tw, :3])
        cv2.putText(text, label.replace("…", "~"), (1, _LABEL_H - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.38, color, 1,
                    cv2.LINE_AA)
        out[y - _LABEL_H: y, x: x + tw, :3] = text
        if marks is not None and np.all(np.isfinite(marks[i])):
            cy, cx = (int(v * z + z // 2) for v in marks[i])
            for d in range(-z, z + 1):
                if 0 <= cy + d < th and 0 <= cx < tw:
                    out[y + cy + d, x + cx] = (255, 255, 255, 255)
                if 0 <= cx + d < tw and 0 <= cy < th:
                    out[y + cy, x + cx + d] = (255, 255, 255, 255)
    for tile, color in ((picked, _PICKED), (highlight, _FRAME)):
        if tile is not None and 0 <= tile < k:
            x, y, tw_, th_ = (int(v) for v in rects[tile])
            x0, y0, x1, y1 = x - 2, y - 2, x + tw_ + 1, y + th_ + 1
            out[y0: y0 + 2, x0: x1 + 1] = color
            out[y1 - 1: y1 + 1, x0: x1 + 1] = color
            out[y0: y1 + 1, x0: x0 + 2] = color
            out[y0: y1 + 1, x1 - 1: x1 + 1] = color
    return out, rects
