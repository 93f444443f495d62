"""Semantic maps: the label image is already there, so one color lookup and one blend.

Class ``k`` gets :func:`segviewer.core.colors.category_color` ``(k)`` at full alpha; classes named
in ``style.transparent_classes`` and the map's ``ignore_index`` stay transparent.
"""

from __future__ import annotations

import cv2
import numpy as np

from segviewer.core.colors import palette_for
from segviewer.core.results import SemanticMap
from segviewer.render.layers import Viewport
from segviewer.render.style import RenderStyle

__all__ = ["semantic_lut", "semantic_layer", "blend_semantic"]


def semantic_lut(sem: SemanticMap, style: RenderStyle) -> np.ndarray:
    """``(L, 4)`` RGBA lookup covering every label value the map can hold (classes and ignore)."""
    n = len(sem.categories)
    size = max(n, (sem.ignore_index or 0) + 1, 256 if sem.labels.dtype == np.uint8 else 0)
    lut = np.zeros((size, 4), np.uint8)
    lut[:n, :3] = palette_for(sem.categories)
    lut[:n, 3] = [0 if name in style.transparent_classes else 255 for name in sem.categories]
    if sem.ignore_index is not None:
        lut[sem.ignore_index] = 0
    return lut


def semantic_layer(sem: SemanticMap, style: RenderStyle, vp: Viewport) -> np.ndarray:
    """The RGBA layer of a semantic map for a viewport (nearest sampling)."""
    return semantic_lut(sem, style)[vp.sample(sem.labels)]


def blend_semantic(image: np.ndarray, sem: SemanticMap, opacity: float, style: RenderStyle) -> None:
    """Blend the semantic layer into an RGB uint8 image in place, as ``compose`` would, but fast."""
    if opacity <= 0:
        return
    lut = semantic_lut(sem, style)
    if sem.labels.dtype != np.uint8:
        from segviewer.render.compose import blend_rgba_into

        blend_rgba_into(image, lut[sem.labels], opacity)
        return
    color = cv2.applyColorMap(sem.labels, np.ascontiguousarray(lut[:256, None, :3]))
    opaque = lut[:, 3] > 0
    if not opaque.any():
        return
    src = color if opacity >= 1.0 else cv2.addWeighted(image, 1.0 - opacity, color, opacity, 0.0)
    if opaque.all():
        np.copyto(image, src)
    else:
        cv2.copyTo(src, cv2.LUT(sem.labels, np.ascontiguousarray(lut[:256, 3])), image)
