"""Labels: ``"name 0.93"`` in black or white on a filled tag of the detection's color.

The tag sits on top of the box's top-left corner, or just inside the box when there is no room
above, and is kept on the canvas. Text is drawn with OpenCV's Hershey font, anti-aliased; since
it always lands on the opaque tag, the layer stays straight-alpha and equals drawing on the image.
A tag's text is rasterised once per distinct string, as its anti-aliased coverage (an LRU of
4096: a video's tags repeat, its classes times a hundred score values), and a tag is that
coverage through a 256-entry color ramp from its fill to its text color (cached per pair): one
lookup per tag instead of rasterising Hershey strokes, which costs five times as much. Text sizes
are cached too.

A screen keeps tags at a constant size in *screen* pixels whatever the zoom (as map viewers do):
:func:`label_tags` gives each tag's box, text and colours in painting order, :func:`tag_patch`
its pixels and :func:`place_tag` where it goes for a box, the same three this module's raster
drawing uses, so a tag on screen at any zoom is the tag an export draws at 100%.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from segviewer.core.colors import contrast_text
from segviewer.core.results import Detections
from segviewer.render.boxes import box_pixels
from segviewer.render.layers import Viewport
from segviewer.render.masks import paint_order
from segviewer.render.style import RenderStyle, detection_colors

__all__ = ["FONT", "LabelTag", "text_size", "tag_size", "label_texts", "label_tags", "tag_patch", "place_tag",
           "draw_labels", "labels_layer"]

FONT = cv2.FONT_HERSHEY_SIMPLEX


@lru_cache(maxsize=16384)
def text_size(text: str, scale: float, thickness: int) -> tuple[int, int, int]:
    """``(width, height, baseline)`` of ``text`` in pixels (cached ``cv2.getTextSize``)."""
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    return int(w), int(h), int(base)


def label_texts(dets: Detections, style: RenderStyle) -> list[str]:
    """The tag text of each detection."""
    names = dets.names
    if not style.show_scores:
        return list(names)
    return [f"{n} {s:.2f}" for n, s in zip(names, dets.scores.tolist())]


@dataclass(frozen=True)
class LabelTag:
    """One detection's tag: its box (xyxy, image pixels), text, fill and text colours."""

    box: tuple[float, float, float, float]
    text: str
    bg: tuple[int, int, int]
    fg: tuple[int, int, int]


def label_tags(dets: Detections, style: RenderStyle, colors: np.ndarray | None = None) -> list[LabelTag]:
    """The tags of ``dets`` in painting order (ascending score: the best is drawn last, on top)."""
    if len(dets) == 0:
        return []
    cols = (detection_colors(dets, style) if colors is None else colors).tolist()
    texts = label_texts(dets, style)
    boxes = np.asarray(dets.boxes, np.float64).tolist()
    out = []
    for i in paint_order(dets.scores).tolist():
        bg = (int(cols[i][0]), int(cols[i][1]), int(cols[i][2]))
        out.append(LabelTag(tuple(boxes[i]), texts[i], bg, contrast_text(bg)))  # type: ignore[arg-type]
    return out


def _tag_dims(text: str, scale: float, thickness: int, pad: int) -> tuple[int, int, int, int]:
    tw, th, base = text_size(text, scale, thickness)
    return tw + 2 * pad, th + base + 2 * pad, th, base


def tag_size(text: str, style: RenderStyle) -> tuple[int, int, int, int]:
    """``(tag width, tag height, text height, baseline)`` in pixels of a tag reading ``text``."""
    return _tag_dims(text, style.font_scale, style.font_thickness, style.label_padding)


@lru_cache(maxsize=4096)
def text_coverage(text: str, scale: float, thickness: int, pad: int) -> np.ndarray:
    """A tag's text as anti-aliased coverage, ``(h, w, 3)`` uint8 (0 fill, 255 text; three equal
    channels, ready for a color lookup), read-only and cached per string."""
    gw, gh, th, _ = _tag_dims(text, scale, thickness, pad)
    cov = np.zeros((gh, gw), np.uint8)
    cv2.putText(cov, text, (pad, pad + th), FONT, scale, 255, thickness, cv2.LINE_AA)
    out = cv2.cvtColor(cov, cv2.COLOR_GRAY2RGB)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=1024)
def _ramp(bg: tuple[int, int, int], fg: tuple[int, int, int]) -> np.ndarray:
    """``(256, 1, 3)`` uint8: coverage ``a`` -> ``bg + (fg - bg) * a / 255``, rounded (what drawing
    ``fg`` anti-aliased over ``bg`` gives a pixel of that coverage)."""
    a = np.arange(256, dtype=np.float64)[:, None] / 255.0
    b, f = np.asarray(bg, np.float64), np.asarray(fg, np.float64)
    ramp = np.rint(b + (f - b) * a).astype(np.uint8).reshape(256, 1, 3)
    ramp.flags.writeable = False
    return ramp


def tag_patch(text: str, bg: tuple[int, int, int], fg: tuple[int, int, int], style: RenderStyle,
              out: np.ndarray | None = None) -> np.ndarray:
    """The tag's pixels, ``(h, w, 3)`` uint8 RGB: ``text`` anti-aliased on a ``bg`` fill (written
    into ``out``, a view of the right shape, when given)."""
    cov = text_coverage(text, style.font_scale, style.font_thickness, style.label_padding)
    return cv2.LUT(cov, _ramp(tuple(bg), tuple(fg)), dst=out)


def place_tag(bx0: int, by0: int, gw: int, gh: int, w: int, h: int) -> tuple[int, int]:
    """Top-left of a ``gw x gh`` tag for a box whose top-left pixel is ``(bx0, by0)`` on a ``w x h``
    canvas: on top of the box's corner, just inside the box when there is no room above, and
    kept on the canvas."""
    x = min(max(bx0, 0), max(w - gw, 0))
    y = by0 - gh if by0 - gh >= 0 else max(by0, 0)
    return x, min(y, max(h - gh, 0))


def draw_labels(canvas: np.ndarray, dets: Detections, style: RenderStyle, vp: Viewport,
                spans: np.ndarray | None = None, colors: np.ndarray | None = None) -> None:
    """Draw the tags of ``dets`` on an RGB or RGBA canvas of ``vp.out_size``.

    ``spans`` (:func:`~segviewer.render.boxes.box_pixels` for ``vp``) and ``colors`` may be
    passed when already known.
    """
    if len(dets) == 0:
        return
    h, w = canvas.shape[:2]
    rgba = canvas.shape[2] == 4
    spans = (box_pixels(dets.boxes, vp) if spans is None else spans).tolist()
    colors = (detection_colors(dets, style) if colors is None else colors).tolist()
    fgs = [contrast_text((c[0], c[1], c[2])) for c in colors]
    texts = label_texts(dets, style)
    for i in paint_order(dets.scores).tolist():
        bx0, by0, bx1, by1 = spans[i]
        if bx1 <= 0 or by1 <= 0 or bx0 >= w or by0 >= h:
            continue
        gw, gh, _, _ = tag_size(texts[i], style)
        x, y = place_tag(bx0, by0, gw, gh, w, h)
        bg, fg = colors[i], fgs[i]
        x1, y1 = min(x + gw, w), min(y + gh, h)
        if not rgba and x1 - x == gw and y1 - y == gh:  # the tag fits: one lookup straight into place
            tag_patch(texts[i], (bg[0], bg[1], bg[2]), fg, style, out=canvas[y:y1, x:x1])
            continue
        # An RGBA canvas takes the RGB patch and an opaque alpha; a tag cut by the canvas edge
        # is clipped.
        patch = tag_patch(texts[i], (bg[0], bg[1], bg[2]), fg, style)
        canvas[y:y1, x:x1, :3] = patch[:y1 - y, :x1 - x]
        if rgba:
            canvas[y:y1, x:x1, 3] = 255


def labels_layer(dets: Detections, style: RenderStyle, vp: Viewport) -> np.ndarray:
    """The RGBA label layer of ``dets`` for a viewport."""
    out = vp.blank()
    draw_labels(out, dets, style, vp)
    return out
