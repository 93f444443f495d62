"""Instance masks: painted into one label image, then colored by one lookup and blended once.

Masks stay compact (:class:`~segviewer.core.results.MaskSet` crops). Instances are ranked by
score (rank 0 lowest, so the best ends on top where masks overlap); label ``2 * rank + 1`` is an
instance's interior and ``2 * rank + 2`` its border (mask pixels within ``style.mask_border``
image pixels of the outside, computed at image resolution so that a windowed render equals a
cropped full render). With that encoding, higher labels always win, so each crop is merged into
the label image with a per-pixel maximum: order-free, one SIMD pass per crop. One color lookup
turns the label image into an RGBA layer; the export path blends it into the image with one pass
per alpha level instead of one full-frame blend per instance.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from segviewer.core.results import Detections, MaskSet
from segviewer.render.layers import Viewport
from segviewer.render.style import RenderStyle, detection_colors

__all__ = ["paint_order", "ranks", "paint_mask_labels", "mask_lut", "masks_layer", "blend_masks"]

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


def ranks(scores: np.ndarray) -> np.ndarray:
    """Each instance's rank in :func:`paint_order` (0 is painted first, i.e. lowest)."""
    order = paint_order(scores)
    r = np.empty(len(order), np.int64)
    r[order] = np.arange(len(order))
    return r


def paint_mask_labels(masks: MaskSet, rank: np.ndarray, vp: Viewport, border: int,
                      out: np.ndarray | None = None) -> np.ndarray:
    """The ``vp.out_size`` label image: 0 empty, ``2 * rank + 1`` interior, ``2 * rank + 2`` border.

    ``rank`` comes from :func:`ranks`. ``out`` may be a buffer of the right shape and dtype to
    paint into (it is zeroed first).
    """
    n = len(masks)
    if out is None:
        out = np.zeros(vp.out_size, _label_dtype(n))
    else:
        out.fill(0)
    small = out.dtype == np.uint8
    wx0, wy0, wx1, wy1 = vp.window
    rows = None if vp.identity else vp.sample_rows()
    cols = None if vp.identity else vp.sample_cols()
    if small:  # one reused buffer for every crop's patch
        flat = scratch("patch", (max((c.size for c in masks.crops), default=0),), np.uint8)
    # Full resolution without outlines: lowest rank first, each crop sets its label through its
    # mask (a constant patch and one masked copy), so the top instance's label wins, as the
    # maximum would; that skips the multiply pass (large masks: ~30% of the painting).
    set_labels = small and not border and rows is None and cols is None
    offsets = masks.offsets.tolist()
    for i in np.argsort(rank, kind="stable").tolist() if set_labels else range(n):
        crop = masks.crops[i]
        if not crop.size:
            continue
        ox, oy = offsets[i]
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
        sub = crop[sy0 - oy:sy1 - oy, sx0 - ox:sx1 - ox].view(np.uint8)
        fill_label = 2 * int(rank[i]) + 1
        if set_labels:
            const = flat[:sub.size].reshape(sub.shape)
            const.fill(fill_label)
            roi = out[r0:r1, c0:c1]
            cv2.copyTo(const, sub, roi)
            continue
        if small:  # numpy's uint8 multiply is SIMD integer code, ~5x OpenCV's (float) one
            patch = np.multiply(sub, np.uint8(fill_label + (1 if border else 0)),
                                out=flat[:sub.size].reshape(sub.shape))
        if border:
            eroded = cv2.erode(sub, _KERNEL, iterations=border, borderType=cv2.BORDER_CONSTANT, borderValue=0)
            # (label + 1) * mask - erosion: interior -> label, border -> label + 1, outside -> 0
            if small:
                np.subtract(patch, eroded, out=patch)
            else:
                patch = sub.astype(out.dtype) * (fill_label + 1) - eroded
        elif not small:
            patch = sub.astype(out.dtype) * fill_label
        if rimg is None and cimg is None:
            patch = patch[ya - sy0:yb - sy0, xa - sx0:xb - sx0]
        else:
            ri = (np.arange(ya, yb) if rimg is None else rimg) - sy0
            ci = (np.arange(xa, xb) if cimg is None else cimg) - sx0
            patch = patch[ri[:, None], ci[None, :]]
        roi = out[r0:r1, c0:c1]
        if small:
            cv2.max(roi, patch, dst=roi)
        else:
            np.maximum(roi, patch, out=roi)
    return out


def mask_lut(colors: np.ndarray, rank: np.ndarray, fill_alpha: int) -> np.ndarray:
    """``(2N + 1, 4)`` RGBA lookup for :func:`paint_mask_labels`' labels (border opaque)."""
    n = len(colors)
    lut = np.zeros((2 * n + 1, 4), np.uint8)
    lut[2 * rank + 1, :3] = colors
    lut[2 * rank + 1, 3] = fill_alpha
    lut[2 * rank + 2, :3] = colors
    lut[2 * rank + 2, 3] = 255
    return lut


def masks_layer(dets: Detections, style: RenderStyle, vp: Viewport) -> np.ndarray:
    """The RGBA mask layer of ``dets`` for a viewport."""
    if dets.masks is None or len(dets) == 0:
        return vp.blank()
    rank = ranks(dets.scores)
    labels = paint_mask_labels(dets.masks, rank, vp, style.mask_border)
    return mask_lut(detection_colors(dets, style), rank, style.mask_alpha_u8)[labels]


_DIRECT_MAX = 1000  # the direct path compares every pair of crop rectangles


def blend_masks(image: np.ndarray, dets: Detections, opacity: float, style: RenderStyle,
                method: str | None = None, colors: np.ndarray | None = None) -> None:
    """Blend the mask layer into an RGB uint8 image in place, as ``compose`` would, but fast.

    Every covered pixel is blended exactly once, with the color and alpha of the instance on top
    there (interior or border), which is what compositing the RGBA layer does. Three ways,
    picked by a cost estimate (``method`` forces one, for tests):

    * ``"direct"``: per instance, inside its crop's rectangle only, with no label image: its
      visible part is its mask minus the higher-ranked masks whose rectangles meet its own; the
      rectangle is blended with a constant-color patch and copied through that mask. Cheapest
      when masks are few or sparse (the usual case).
    * ``"crops"``: the same per-instance blend, with visibility read from a painted label image
      (``labels == label``); for more than ``_DIRECT_MAX`` masks, where pairwise tests get costly.
    * ``"lut"``: a label image of the masks' bounding region, one color lookup
      (``cv2.applyColorMap``), one ``addWeighted`` per alpha level and masked copies, in
      cache-sized bands. Cheapest when masks cover most of their region and overlap a lot.

    None does full-frame work per instance or builds N full-frame arrays. ``colors`` may pass
    ``detection_colors(dets, style)`` when the caller has it already (boxes and labels share it).
    """
    if dets.masks is None or len(dets) == 0 or opacity <= 0:
        return
    crops = dets.masks.crops
    hw = np.array([c.shape for c in crops], np.int64).reshape(-1, 2)
    off = dets.masks.offsets.astype(np.int64)
    box = np.concatenate([off, off + hw[:, ::-1]], axis=1)  # crop rectangles, x0 y0 x1 y1
    nonempty = hw.min(axis=1) > 0
    if not nonempty.any():
        return
    win = (int(box[nonempty, 0].min()), int(box[nonempty, 1].min()),
           int(box[nonempty, 2].max()), int(box[nonempty, 3].max()))
    n = len(dets)
    dtype = _label_dtype(n)
    rank = ranks(dets.scores)
    if colors is None:
        colors = detection_colors(dets, style)
    t_fill = style.mask_alpha_u8 / 255.0 * opacity
    t_edge = opacity if style.mask_border else None
    if method is None:
        # Measured on a 2-core x86 (CPU time, 640x480 to 1920x1080, 10-50 masks): the lookup
        # path costs ~2.5 ns per region pixel plus ~0.3-0.5 ns per crop pixel (painting), the
        # direct path ~1.3-2.7 ns per crop pixel; they cross where the crops add up to 2-4
        # times the region (heavily overlapping, large masks).
        region_area = (win[2] - win[0]) * (win[3] - win[1])
        lut_cheaper = 2.5 * region_area < int((hw[:, 0] * hw[:, 1]).sum())
        method = "lut" if dtype == np.uint8 and lut_cheaper else "direct" if n <= _DIRECT_MAX else "crops"
    if method == "direct":
        _blend_direct(image, crops, box, nonempty, colors, rank, style.mask_border, t_fill, t_edge)
        return
    vp = Viewport.make(dets.image_size, win)
    labels = paint_mask_labels(dets.masks, rank, vp, style.mask_border, scratch("labels", vp.out_size, dtype))
    region = image[win[1]:win[3], win[0]:win[2]]
    if method == "lut":
        _blend_lut(region, labels, colors, rank, box[nonempty] - (win[0], win[1], win[0], win[1]), t_fill, t_edge)
    else:
        _blend_crops(region, labels, dets.masks, win, colors, rank, t_fill, t_edge)


def _blend_direct(image: np.ndarray, crops: tuple[np.ndarray, ...], box: np.ndarray, nonempty: np.ndarray,
                  colors: np.ndarray, rank: np.ndarray, border: int, t_fill: float, t_edge: float | None) -> None:
    """Per-instance blend without a label image (see :func:`blend_masks`); ``box`` holds the crop
    rectangles (x0, y0, x1, y1).

    Each pixel must be blended once, with the top instance there. Two ways to get that, picked
    by the bytes they move: when rectangles overlap little, each instance's visible part (its
    mask minus the higher-ranked masks that meet it) is blended; when they overlap a lot
    (large masks), instances are painted lowest rank first, each blended from a snapshot of the
    pixels as they were before any instance and copied through its own mask, so a higher one
    simply overwrites a lower one.
    """
    ok = np.flatnonzero(nonempty)
    b, r = (box, rank) if len(ok) == len(box) else (box[ok], rank[ok])
    above = ((b[:, None, 0] < b[None, :, 2]) & (b[None, :, 0] < b[:, None, 2])
             & (b[:, None, 1] < b[None, :, 3]) & (b[None, :, 1] < b[:, None, 3])
             & (r[None, :] > r[:, None]))  # above[a, c]: c's rectangle meets a's and c is on top
    snapshot = False
    if np.count_nonzero(above) > len(b):  # many overlaps: weigh a snapshot of the window
        ext = np.minimum(b[:, None, 2:], b[None, :, 2:]) - np.maximum(b[:, None, :2], b[None, :, :2])
        inter = ext[..., 0] * ext[..., 1]
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        (wx0, wy0), (wx1, wy1) = b[:, :2].min(axis=0).tolist(), b[:, 2:].max(axis=0).tolist()
        # bytes: subtracting every pair's overlap and copying occluded masks, vs the snapshot
        moved = 2 * int(inter[above].sum()) + int(area[above.any(axis=1)].sum())
        snapshot = moved > 3 * (wx1 - wx0) * (wy1 - wy0)
    occluders: dict[int, list[int]] = {}
    if snapshot:
        window = image[wy0:wy1, wx0:wx1]  # (the window was measured above)
        source = scratch("source", window.shape, np.uint8)
        np.copyto(source, window)
        order = ok[np.argsort(r, kind="stable")].tolist()  # lowest rank first
    else:
        source, wx0, wy0 = image, 0, 0
        order = ok.tolist()
        idx = ok.tolist()
        for a, c in zip(*(v.tolist() for v in np.nonzero(above))):
            occluders.setdefault(idx[a], []).append(idx[c])
    color_lists = colors.tolist()
    # Per instance, px * (1 - t) + color * t as one 3x4 channel transform of the rectangle: one
    # pass, no constant-color patch to fill first (equal to addWeighted's blend within 1 LSB,
    # identical for most alphas).
    fill_mats = _blend_matrices(colors, t_fill)
    edge_mats = _blend_matrices(colors, t_edge) if t_edge is not None and t_edge < 1.0 else None
    hmax, wmax = int((b[:, 3] - b[:, 1]).max()), int((b[:, 2] - b[:, 0]).max())
    # Reused buffers: fresh outputs for every call of every instance cost page faults.
    blend = scratch("blend3", (hmax, wmax, 3), np.uint8)
    visible = scratch("visible", (hmax, wmax), np.uint8)
    if t_edge is not None:
        const = scratch("const", (hmax, wmax, 3), np.uint8)
        edge_blend = scratch("edge3", (hmax, wmax, 3), np.uint8)
        eroded = scratch("eroded", (hmax, wmax), np.uint8)
    boxes = box.tolist()
    u8 = np.uint8
    copy_to, subtract, transform = cv2.copyTo, cv2.subtract, cv2.transform
    for i in order:
        x0, y0, x1, y1 = boxes[i]
        h, w = y1 - y0, x1 - x0
        own = crops[i].view(u8)
        mask = own
        occ = occluders.get(i)
        if occ:
            mask = visible[:h, :w]  # visible part: minus every higher-ranked mask that meets it
            np.copyto(mask, own)
            for j in occ:
                jx0, jy0, jx1, jy1 = boxes[j]
                xa, ya, xb, yb = max(x0, jx0), max(y0, jy0), min(x1, jx1), min(y1, jy1)
                part = mask[ya - y0:yb - y0, xa - x0:xb - x0]
                subtract(part, crops[j][ya - jy0:yb - jy0, xa - jx0:xb - jx0].view(u8), dst=part)
        px = source[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
        out = transform(px, fill_mats[i], dst=blend[:h, :w])
        if t_edge is not None:
            ero = eroded[:h, :w]
            cv2.erode(own, _KERNEL, dst=ero, iterations=border, borderType=cv2.BORDER_CONSTANT, borderValue=0)
            edge = subtract(own, ero, dst=ero)
            if occ:
                cv2.bitwise_and(edge, mask, dst=edge)
            if edge_mats is None:  # opaque outlines: the color itself
                src = const[:h, :w]
                cv2.rectangle(src, (0, 0), (w - 1, h - 1), color_lists[i], -1)  # faster than a numpy fill
            else:
                src = transform(px, edge_mats[i], dst=edge_blend[:h, :w])
            copy_to(src, edge, out)
        copy_to(out, mask, image[y0:y1, x0:x1])


def _blend_matrices(colors: np.ndarray, t: float) -> np.ndarray:
    """``(N, 3, 4)`` channel transforms ``px -> px * (1 - t) + color * t``, one per color."""
    n = len(colors)
    m = np.zeros((n, 3, 4))
    d = np.arange(3)
    m[:, d, d] = 1.0 - t
    m[:, :, 3] = np.asarray(colors, np.float64) * t
    return m


_BAND_PIXELS = 1 << 17  # a band's arrays (labels, colors, blend) stay in the L2 cache


def _blend_lut(region: np.ndarray, labels: np.ndarray, colors: np.ndarray, rank: np.ndarray,
               boxes: np.ndarray, t_fill: float, t_edge: float | None) -> None:
    """Region blend: color lookup, one addWeighted per alpha level, masked copies (uint8 labels).

    Done in horizontal bands, each cut to the columns its crops (``boxes``, xyxy in region
    pixels) cover, skipping bands without any: the working set stays in cache, and sparse
    scenes only pay for where masks are.
    """
    lut = np.zeros((256, 1, 3), np.uint8)
    lut[2 * rank + 1, 0] = colors
    lut[2 * rank + 2, 0] = colors
    is_edge = np.zeros(256, np.uint8)
    is_edge[2:2 * len(colors) + 1:2] = 255  # even labels are borders
    h, w = labels.shape
    step = max(8, _BAND_PIXELS // max(w, 1))
    buf3 = scratch("color", (step * w * 3,), np.uint8)
    buf_blend = scratch("blend", (step * w * 3,), np.uint8)
    buf_edge = scratch("edge", (step * w,), np.uint8)
    buf_edge_px = scratch("edge_px", (step * w * 3,), np.uint8) if t_edge is not None and t_edge < 1.0 else None
    for r0 in range(0, h, step):
        r1 = min(r0 + step, h)
        hit = (boxes[:, 1] < r1) & (boxes[:, 3] > r0)
        if not hit.any():
            continue
        c0, c1 = int(boxes[hit, 0].min()), int(boxes[hit, 2].max())
        lab = labels[r0:r1, c0:c1]
        px = region[r0:r1, c0:c1]
        bh, bw = lab.shape
        color = cv2.applyColorMap(lab, lut, dst=buf3[:bh * bw * 3].reshape(bh, bw, 3))
        if t_edge is not None:
            edge = cv2.LUT(lab, is_edge, dst=buf_edge[:bh * bw].reshape(bh, bw))
            edge_px = color if buf_edge_px is None else cv2.addWeighted(
                px, 1.0 - t_edge, color, t_edge, 0.0, dst=buf_edge_px[:bh * bw * 3].reshape(bh, bw, 3))
        if t_fill > 0:
            blended = cv2.addWeighted(px, 1.0 - t_fill, color, t_fill, 0.0,
                                      dst=buf_blend[:bh * bw * 3].reshape(bh, bw, 3))
            cv2.copyTo(blended, lab, px)
        if t_edge is not None:
            cv2.copyTo(edge_px, edge, px)


def _blend_crops(region: np.ndarray, labels: np.ndarray, masks: MaskSet, win: tuple[int, int, int, int],
                 colors: np.ndarray, rank: np.ndarray, t_fill: float, t_edge: float | None) -> None:
    """Per-label blend inside each crop's rectangle (any label dtype).

    Per instance: a patch of its constant color, the rectangle blended with it
    (``addWeighted``), border pixels taken from the patch (or a second blend), then one masked
    copy of the instance's visible pixels.
    """
    color_lists = colors.tolist()
    const = scratch("const", (max(c.shape[0] for c in masks.crops), max(c.shape[1] for c in masks.crops), 3),
                    np.uint8)
    for i, (crop, off) in enumerate(zip(masks.crops, masks.offsets.tolist())):
        if not crop.size:
            continue
        x, y = off[0] - win[0], off[1] - win[1]
        h, w = crop.shape
        lab = labels[y:y + h, x:x + w]
        px = region[y:y + h, x:x + w]
        src = const[:h, :w]
        cv2.rectangle(src, (0, 0), (w - 1, h - 1), color_lists[i], -1)  # faster than a numpy fill
        v = 2 * int(rank[i]) + 1  # inRange, not compare: compare takes a 1x1 array for a scalar
        out = cv2.addWeighted(px, 1.0 - t_fill, src, t_fill, 0.0)
        if t_edge is not None:
            edge_src = src if t_edge >= 1.0 else cv2.addWeighted(px, 1.0 - t_edge, src, t_edge, 0.0)
            cv2.copyTo(edge_src, cv2.inRange(lab, v + 1, v + 1), out)
        cv2.copyTo(out, cv2.inRange(lab, v, v + (t_edge is not None)), px)
