"""Panoptic colors: each category its base color, each thing instance a deterministic jitter of it.

Stuff segments get the plain :func:`~segviewer.core.colors.category_color` of their category;
thing segments get :func:`~segviewer.core.colors.instance_color` ``(category, segment id)``, so a
segment keeps its color wherever it is drawn (screen, export, another frame with the same id).
Void (id 0) and categories in ``style.transparent_classes`` are transparent. With
``style.mask_border > 0`` the pixels within that many image pixels (along rows and columns) of a
different segment are drawn as an opaque white boundary; the test uses image pixels, so a
windowed render equals the same region of a full render.

Registers itself with :func:`segviewer.render.layers.register_renderer` for ``PanopticMap``.
"""

from __future__ import annotations

import numpy as np

from segviewer.core.colors import category_color, color_indices, instance_color
from segviewer.core.results import PanopticMap
from segviewer.render.layers import LayerKind, Viewport, register_renderer
from segviewer.render.style import RenderStyle

__all__ = ["panoptic_colors", "panoptic_layer", "segment_index", "segment_at", "BOUNDARY_RGB"]

BOUNDARY_RGB = (255, 255, 255)


def panoptic_colors(pm: PanopticMap, style: RenderStyle | None = None) -> np.ndarray:
    """``(K + 1, 4)`` RGBA: row 0 void (transparent), row ``k + 1`` segment ``pm.segments[k]``."""
    style = style or RenderStyle()
    lut = np.zeros((len(pm.segments) + 1, 4), np.uint8)
    cidx = color_indices(pm.categories)  # colors follow class names, as in every other layer
    for k, s in enumerate(pm.segments):
        name = pm.categories[s.category_id]
        if name in style.transparent_classes:
            continue
        if s.isthing and style.instance_jitter > 0:
            rgb = instance_color(int(cidx[s.category_id]), int(s.id), float(style.instance_jitter))
        else:
            rgb = category_color(int(cidx[s.category_id]))
        lut[k + 1, :3] = rgb
        lut[k + 1, 3] = 255
    return lut


def segment_index(pm: PanopticMap, ids: np.ndarray) -> np.ndarray:
    """Compact index (0 void, ``k + 1`` for ``pm.segments[k]``) of each id in ``ids``."""
    seg_ids = np.array([s.id for s in pm.segments], np.int64)
    if not len(seg_ids):
        return np.zeros(ids.shape, np.intp)
    order = np.argsort(seg_ids)
    srt = seg_ids[order]
    pos = np.minimum(np.searchsorted(srt, ids), len(srt) - 1)
    return np.where(srt[pos] == ids, order[pos] + 1, 0).astype(np.intp)


def _boundary(ids: np.ndarray, rows: np.ndarray, cols: np.ndarray, width: int) -> np.ndarray:
    """Whether each sampled pixel has a different id within ``width`` pixels along its row or column."""
    h, w = ids.shape
    centre = ids[rows[:, None], cols[None, :]]
    out = np.zeros(centre.shape, bool)
    for d in range(1, width + 1):
        for dr, dc in ((-d, 0), (d, 0), (0, -d), (0, d)):
            r = np.clip(rows + dr, 0, h - 1)
            c = np.clip(cols + dc, 0, w - 1)
            out |= ids[r[:, None], c[None, :]] != centre
    return out & (centre != 0)


def panoptic_layer(pm: PanopticMap, style: RenderStyle, vp: Viewport) -> np.ndarray:
    """The RGBA layer of a panoptic map for a viewport (nearest sampling)."""
    ids = vp.sample(pm.segment_ids)
    layer = panoptic_colors(pm, style)[segment_index(pm, ids)]
    if style.mask_border > 0:
        edge = _boundary(pm.segment_ids, vp.sample_rows(), vp.sample_cols(), style.mask_border)
        edge &= layer[..., 3] > 0
        layer[edge] = (*BOUNDARY_RGB, 255)
    return layer


def segment_at(panoptic: PanopticMap, x: float, y: float) -> dict | None:
    """The segment under image point ``(x, y)`` (continuous coordinates) as a plain dict, or None
    for void or outside the image: ``{"id", "category", "category_id", "isthing", "area", "score",
    "iscrowd"}`` (``category_id`` is the index into ``panoptic.categories``)."""
    h, w = panoptic.image_size
    col, row = int(np.floor(x)), int(np.floor(y))
    if not (0 <= row < h and 0 <= col < w):
        return None
    sid = int(panoptic.segment_ids[row, col])
    seg = panoptic.segment(sid) if sid else None
    if seg is None:
        return None
    return {"id": sid, "category": panoptic.categories[seg.category_id], "category_id": seg.category_id,
            "isthing": seg.isthing, "area": seg.area, "score": seg.score, "iscrowd": seg.iscrowd}


def _render(result: PanopticMap, kind: LayerKind, style: RenderStyle, vp: Viewport) -> np.ndarray:
    return panoptic_layer(result, style, vp)


register_renderer(PanopticMap, (LayerKind.PANOPTIC,), _render)
