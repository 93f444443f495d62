"""Instance masks: painted into one label image, then colored by one lookup and blended once.

Masks stay compact (:class:`~segviewer.core.results.MaskSet` crops). Each crop is written into a
label image of the output region, in ascending score order so that the higher score ends on top
where masks overlap. Label ``1 + i`` is the interior of instance ``i``, label ``1 + N + i`` its
border (mask pixels within ``style.mask_border`` image pixels of the outside, computed at image
resolution so that a windowed render equals a cropped full render). One color lookup turns the
label image into an RGBA layer; the export path blends it into the image with one pass per alpha
level instead of one full-frame blend per instance.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from segviewer.core.results import Detections, MaskSet
from segviewer.render.layers import Viewport
from segviewer.render.style import RenderStyle, detection_colors

__all__ = ["paint_order", "paint_mask_labels", "mask_lut", "masks_layer", "blend_masks"]

_KERNEL = np.ones((3, 3), np.uint8)


def paint_order(scores: np.ndarray) -> np.ndarray:
    """Indices in painting order: ascending score, so the best ends on top; on ties the lower
    index (the detector's rank) ends on top."""
    s = np.asarray(scores, np.float64)
    return np.lexsort((-np.arange(len(s)), s))


def _label_dtype(n: int) -> type:
    top = 2 * n + 1
    return np.uint8 if top <= 255 else np.uint16 if top <= 65535 else np.int32


def _span(samples: np.ndarray | None, lo_img: int, lo: int, hi: int) -> tuple[int, int, np.ndarray | None]:
    """Output index range whose sampled image coordinate lies in ``[lo, hi)``.

    ``samples`` is None for an identity axis starting at image coordinate ``lo_img``.
    Returns ``(o0, o1, image_coords or None)``.
    """
    if samples is None:
        return lo - lo_img, hi - lo_img, None
    o0, o1 = np.searchsorted(samples, [lo, hi], side="left")
    return int(o0), int(o1), samples[o0:o1]


_SCRATCH = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A per-thread reusable buffer (uninitialised). Fresh multi-megabyte arrays on every frame
    cost page faults that take longer than the blending itself."""
    bufs = _SCRATCH.__dict__.setdefault("bufs", {})
    buf = bufs.get(name)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = bufs[name] = np.empty(shape, dtype)
    return buf


def paint_mask_labels(masks: MaskSet, order: np.ndarray, vp: Viewport, border: int,
                      out: np.ndarray | None = None) -> np.ndarray:
    """The ``vp.out_size`` label image: 0 empty, ``1 + i`` interior, ``1 + N + i`` border of mask ``i``.

    ``out`` may be a buffer of the right shape and dtype to paint into (it is zeroed first).
    """
    n = len(masks)
    if out is None:
        out = np.zeros(vp.out_size, _label_dtype(n))
    else:
        out.fill(0)
    wx0, wy0, wx1, wy1 = vp.window
    rows = None if vp.identity else vp.sample_rows()
    cols = None if vp.identity else vp.sample_cols()
    for i in order:
        crop = masks.crops[i]
        if not crop.size:
            continue
        ox, oy = int(masks.offsets[i][0]), int(masks.offsets[i][1])
        ch, cw = crop.shape
        # Image rows/cols of the crop inside the window.
        ya, yb = max(oy, wy0), min(oy + ch, wy1)
        xa, xb = max(ox, wx0), min(ox + cw, wx1)
        if ya >= yb or xa >= xb:
            continue
        r0, r1, rimg = _span(rows, wy0, ya, yb)
        c0, c1, cimg = _span(cols, wx0, xa, xb)
        if r0 >= r1 or c0 >= c1:
            continue
        # The part of the crop we need, with a margin so the border is right at cut edges.
        if rimg is not None:
            ya, yb = int(rimg[0]), int(rimg[-1]) + 1
        if cimg is not None:
            xa, xb = int(cimg[0]), int(cimg[-1]) + 1
        m = border
        sy0, sy1 = max(ya - m, oy), min(yb + m, oy + ch)
        sx0, sx1 = max(xa - m, ox), min(xb + m, ox + cw)
        sub = crop[sy0 - oy:sy1 - oy, sx0 - ox:sx1 - ox]
        if border:
            sub8 = sub.view(np.uint8)
            eroded = cv2.erode(sub8, _KERNEL, iterations=border, borderType=cv2.BORDER_CONSTANT,
                               borderValue=0)
            edge = cv2.subtract(sub8, eroded).view(bool)  # in the mask, not in its erosion
        if rimg is None and cimg is None:
            sl = (slice(ya - sy0, yb - sy0), slice(xa - sx0, xb - sx0))
            fill = sub[sl]
            edge_s = edge[sl] if border else None
        else:
            ri = (np.arange(ya, yb) if rimg is None else rimg) - sy0
            ci = (np.arange(xa, xb) if cimg is None else cimg) - sx0
            fill = sub[ri[:, None], ci[None, :]]
            edge_s = edge[ri[:, None], ci[None, :]] if border else None
        roi = out[r0:r1, c0:c1]
        np.copyto(roi, 1 + int(i), where=fill)
        if edge_s is not None:
            np.copyto(roi, 1 + n + int(i), where=edge_s)
    return out


def mask_lut(colors: np.ndarray, fill_alpha: int) -> np.ndarray:
    """``(2N + 1, 4)`` RGBA lookup for :func:`paint_mask_labels`' labels (border opaque)."""
    n = len(colors)
    lut = np.zeros((2 * n + 1, 4), np.uint8)
    lut[1:n + 1, :3] = colors
    lut[1:n + 1, 3] = fill_alpha
    lut[n + 1:, :3] = colors
    lut[n + 1:, 3] = 255
    return lut


def masks_layer(dets: Detections, style: RenderStyle, vp: Viewport) -> np.ndarray:
    """The RGBA mask layer of ``dets`` for a viewport."""
    if dets.masks is None or len(dets) == 0:
        return vp.blank()
    labels = paint_mask_labels(dets.masks, paint_order(dets.scores), vp, style.mask_border)
    lut = mask_lut(detection_colors(dets.class_ids, style), style.mask_alpha_u8)
    return lut[labels]


def _union_box(masks: MaskSet) -> tuple[int, int, int, int] | None:
    boxes = [(int(o[0]), int(o[1]), int(o[0]) + c.shape[1], int(o[1]) + c.shape[0])
             for c, o in zip(masks.crops, masks.offsets) if c.size]
    if not boxes:
        return None
    b = np.array(boxes)
    return int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max())


def _blend_matrix(color: np.ndarray, t: float) -> np.ndarray:
    """3x4 affine color matrix for ``cv2.transform``: ``out = (1 - t) * px + t * color``."""
    m = np.zeros((3, 4), np.float64)
    m[0, 0] = m[1, 1] = m[2, 2] = 1.0 - t
    m[:, 3] = np.asarray(color, np.float64) * t
    return m


def blend_masks(image: np.ndarray, dets: Detections, opacity: float, style: RenderStyle,
                method: str | None = None) -> None:
    """Blend the mask layer into an RGB uint8 image in place, as ``compose`` would, but fast.

    The label image is painted once over the bounding region of all masks (that settles which
    instance is on top where masks overlap); then every labelled pixel is blended exactly once,
    with the color and alpha of its label, which is what compositing the RGBA layer does. Two
    ways to do the blend, picked by a cost estimate (``method`` forces one, for tests):

    * ``"lut"``: one color lookup of the whole region (``cv2.applyColorMap``), one
      ``addWeighted`` per alpha level, masked copies. Cost grows with the region's area.
    * ``"crops"``: per label, inside its own crop's rectangle only: ``cv2.transform`` with a
      constant color matrix, copied through ``labels == label``. Cost grows with the crops' area
      plus a small per-instance overhead; wins when masks are sparse in a large frame.

    Neither does full-frame work per instance or builds N full-frame arrays.
    """
    if dets.masks is None or len(dets) == 0 or opacity <= 0:
        return
    win = _union_box(dets.masks)
    if win is None:
        return
    vp = Viewport.make(dets.image_size, win)
    n = len(dets)
    dtype = _label_dtype(n)
    labels = paint_mask_labels(dets.masks, paint_order(dets.scores), vp, style.mask_border,
                               scratch("labels", vp.out_size, dtype))
    colors = detection_colors(dets.class_ids, style)
    region = image[win[1]:win[3], win[0]:win[2]]
    t_fill = style.mask_alpha_u8 / 255.0 * opacity
    if method is None:
        crop_area = sum(c.size for c in dets.masks.crops)
        method = "lut" if dtype == np.uint8 and region.shape[0] * region.shape[1] < 1.6 * crop_area + 6000 * n \
            else "crops"
    if method == "lut":
        _blend_lut(region, labels, colors, t_fill, opacity if style.mask_border else None)
    else:
        _blend_crops(region, labels, dets.masks, win, colors, t_fill, opacity if style.mask_border else None)


def _blend_lut(region: np.ndarray, labels: np.ndarray, colors: np.ndarray, t_fill: float,
               t_edge: float | None) -> None:
    """Whole-region blend: color lookup, one addWeighted per alpha level, masked copies (uint8 labels)."""
    n = len(colors)
    lut = np.zeros((256, 1, 3), np.uint8)
    lut[1:n + 1, 0] = colors
    lut[n + 1:2 * n + 1, 0] = colors
    shape3 = region.shape
    color = cv2.applyColorMap(labels, lut, dst=scratch("color", shape3, np.uint8))
    edge_px = edge = None
    if t_edge is not None:
        edge = cv2.threshold(labels, n, 255, cv2.THRESH_BINARY, dst=scratch("edge", labels.shape, np.uint8))[1]
        edge_px = color if t_edge >= 1.0 else cv2.addWeighted(
            region, 1.0 - t_edge, color, t_edge, 0.0, dst=scratch("edge_px", shape3, np.uint8))
    if t_fill > 0:
        blended = cv2.addWeighted(region, 1.0 - t_fill, color, t_fill, 0.0, dst=scratch("blend", shape3, np.uint8))
        cv2.copyTo(blended, labels, region)
    if edge is not None:
        cv2.copyTo(edge_px, edge, region)


def _blend_crops(region: np.ndarray, labels: np.ndarray, masks: MaskSet, win: tuple[int, int, int, int],
                 colors: np.ndarray, t_fill: float, t_edge: float | None) -> None:
    """Per-label blend inside each crop's rectangle (any label dtype)."""
    n = len(colors)
    fcolors = colors.astype(np.float64)
    const = None
    if t_edge is not None and t_edge >= 1.0:
        const = scratch("const", (max(c.shape[0] for c in masks.crops), max(c.shape[1] for c in masks.crops), 3),
                        np.uint8)
    for i, (crop, off) in enumerate(zip(masks.crops, masks.offsets)):
        if not crop.size:
            continue
        x, y = int(off[0]) - win[0], int(off[1]) - win[1]
        h, w = crop.shape
        lab = labels[y:y + h, x:x + w]
        px = region[y:y + h, x:x + w]
        if t_fill > 0:
            inside = cv2.compare(lab, 1 + i, cv2.CMP_EQ)
            cv2.copyTo(cv2.transform(px, _blend_matrix(fcolors[i], t_fill)), inside, px)
        if t_edge is not None:
            edge = cv2.compare(lab, 1 + n + i, cv2.CMP_EQ)
            if const is not None:
                src = const[:h, :w]
                src[...] = colors[i]
            else:
                src = cv2.transform(px, _blend_matrix(fcolors[i], t_edge))
            cv2.copyTo(src, edge, px)
