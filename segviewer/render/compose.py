"""Alpha compositing for export, with the same math as the canvas, so an export looks like the screen.

Each layer is straight-alpha RGBA drawn *source over* with a layer opacity ``o``, exactly what a
Qt ``ImageItem`` with ``setOpacity(o)`` does::

    out = dst * (1 - a * o) + src * a * o        (a = alpha / 255)

:func:`compose` is that formula, layer after layer. :func:`render_overlay` is the fast export path:
it never builds the full RGBA layers, but its result equals
``compose(image, overlay_layers(results, opacities, style))`` up to rounding (1 LSB).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from segviewer.core.results import Detections, SemanticMap
from segviewer.render.layers import Z_ORDER, LayerKind, Viewport, layer_kinds, render_layer
from segviewer.render.style import DEFAULT_STYLE, RenderStyle

__all__ = ["compose", "blend_rgba_into", "overlay_layers", "render_overlay"]


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be RGB uint8 (H, W, 3), got {img.dtype} {img.shape}")
    return img


def _check_opacity(o: float) -> float:
    o = float(o)
    if not 0.0 <= o <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1], got {o}")
    return o


def blend_rgba_into(dst: np.ndarray, layer: np.ndarray, opacity: float) -> None:
    """Blend a straight-alpha RGBA layer into an RGB uint8 array in place (only where alpha > 0).

    float32 arithmetic, rounded to nearest: within 0.5 LSB of the float64 formula.
    """
    if opacity <= 0:
        return
    alpha = np.ascontiguousarray(layer[..., 3])
    x, y, w, h = cv2.boundingRect(alpha)
    if w == 0 or h == 0:
        return
    t = alpha[y:y + h, x:x + w].astype(np.float32)
    t *= np.float32(opacity / 255.0)
    t = t[..., None]
    d = dst[y:y + h, x:x + w]
    res = d.astype(np.float32)
    res += (layer[y:y + h, x:x + w, :3].astype(np.float32) - res) * t
    np.rint(res, out=res)
    np.clip(res, 0, 255, out=res)
    d[...] = res.astype(np.uint8)


def compose(image_rgb: np.ndarray, layers: Sequence[tuple[np.ndarray, float]]) -> np.ndarray:
    """Draw each ``(rgba_layer, opacity)`` over the image in order; returns a new RGB uint8 image."""
    out = _check_image(image_rgb).copy()
    for k, (layer, o) in enumerate(layers):
        lay = np.asarray(layer)
        if lay.dtype != np.uint8 or lay.shape != (*out.shape[:2], 4):
            raise ValueError(f"layer {k} must be uint8 {(*out.shape[:2], 4)}, got {lay.dtype} {lay.shape}")
        blend_rgba_into(out, lay, _check_opacity(o))
    return out


def _plan(results: Sequence[object], opacities: Mapping[LayerKind, float] | Mapping[str, float],
          image_hw: tuple[int, int] | None) -> list[tuple[object, LayerKind, float]]:
    """(result, kind, opacity) in drawing order: by :data:`Z_ORDER`, then by result order."""
    ops = {LayerKind(k): _check_opacity(v) for k, v in opacities.items()}
    for r in results:
        size = getattr(r, "image_size", None)
        if image_hw is not None and size != image_hw:
            raise ValueError(f"a {type(r).__name__} of size {size} does not fit the {image_hw} image")
    return [(r, kind, ops[kind]) for kind in Z_ORDER if ops.get(kind, 0.0) > 0
            for r in results if kind in layer_kinds(r)]


def overlay_layers(results: Sequence[object], opacities: Mapping[LayerKind, float] | Mapping[str, float],
                   style: RenderStyle = DEFAULT_STYLE) -> list[tuple[np.ndarray, float]]:
    """The full-size layers :func:`render_overlay` draws, in its order (the canvas' stacking order)."""
    return [(render_layer(r, k, style), o) for r, k, o in _plan(results, opacities, None)]


def render_overlay(image: np.ndarray, results: Sequence[object],
                   opacities: Mapping[LayerKind, float] | Mapping[str, float],
                   style: RenderStyle = DEFAULT_STYLE) -> np.ndarray:
    """Draw the layers named in ``opacities`` of every result onto a copy of ``image``.

    Masks and semantic maps are blended in one vectorised pass each; boxes, labels and keypoints
    at opacity 1 are drawn straight onto the image (they are opaque, so that equals blending).
    """
    from segviewer.render.boxes import box_pixels, draw_boxes_rgb
    from segviewer.render.keypoints import draw_keypoints
    from segviewer.render.labels import draw_labels
    from segviewer.render.masks import blend_masks
    from segviewer.render.semantic import blend_semantic
    from segviewer.render.style import detection_colors

    out = _check_image(image).copy()
    shared: dict[int, tuple[Viewport, np.ndarray, np.ndarray]] = {}  # per Detections: boxes and labels agree
    palette: dict[int, np.ndarray] = {}  # per Detections: masks, boxes and labels share their colors

    def colors_of(d: Detections) -> np.ndarray:
        if id(d) not in palette:
            palette[id(d)] = detection_colors(d, style)
        return palette[id(d)]

    def prep(d: Detections) -> tuple[Viewport, np.ndarray, np.ndarray]:
        if id(d) not in shared:
            vp = Viewport.make(d.image_size)
            shared[id(d)] = (vp, box_pixels(d.boxes, vp), colors_of(d))
        return shared[id(d)]

    for r, kind, o in _plan(results, opacities, out.shape[:2]):
        if isinstance(r, Detections) and kind is LayerKind.MASKS:
            blend_masks(out, r, o, style, colors=colors_of(r))
        elif isinstance(r, SemanticMap):
            blend_semantic(out, r, o, style)
        elif isinstance(r, Detections) and o >= 1.0:
            vp, spans, colors = prep(r)
            if kind is LayerKind.BOXES:
                draw_boxes_rgb(out, r, style, spans, colors)
            elif kind is LayerKind.LABELS:
                draw_labels(out, r, style, vp, spans, colors)
            else:
                draw_keypoints(out, r, style, vp)
        else:
            blend_rgba_into(out, render_layer(r, kind, style), o)
    return out
