"""YOLACT's mask assembly, step by step (numpy: the adapter, the training evaluation, the view and
the tests all call these, so what the view draws is what produced the layer).

For a detection with coefficients ``c`` (``k``) and the image's prototypes ``P`` (``k x h x w``,
at stride ``s`` of the model frame):

1. **linear**: ``P c``, a ``h x w`` map of logits (every prototype weighted by its coefficient);
2. **sigmoid**: ``sigma(P c)`` in ``[0, 1]``;
3. **crop**: the sigmoid map sampled bilinearly at the centres of the input-image pixels inside
   the detection's box (outside the box the mask is zero: YOLACT's crop);
4. **threshold**: ``>= 0.5``.

YOLACT crops at prototype resolution and then upsamples; here the upsampling happens first and the
crop uses the exact box in image pixels, so mask edges on the box's sides stay sharp. The bilinear
sampling is ``F.interpolate(..., mode="bilinear", align_corners=False)``'s (edge-clamped) rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MASK_THRESHOLD = 0.5


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))).astype(np.float32)


def linear(proto: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """``(n, h, w)`` logits ``P c`` for ``coef`` ``(n, k)`` and ``proto`` ``(k, h, w)``."""
    p = np.asarray(proto, np.float32)
    c = np.asarray(coef, np.float32).reshape(-1, p.shape[0])
    # einsum's own loop, not the BLAS: OpenBLAS ran this product on every core, ignoring --threads,
    # and its idle threads kept spinning: YOLACT's predict took 86 ms of CPU per image, not 42
    # (measured); and each mask's sums no longer depend on how many masks are computed at once
    return np.einsum("nk,khw->nhw", c, p).astype(np.float32)


def box_pixels(box: np.ndarray, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` the integer pixel range (end exclusive) whose centres lie in ``box``
    (input-image xyxy), clipped to the image; empty when ``x1 <= x0`` or ``y1 <= y0``."""
    h, w = image_size
    bx0, by0, bx1, by1 = (float(v) for v in box)
    x0, y0 = max(0, math.ceil(bx0 - 0.5)), max(0, math.ceil(by0 - 0.5))
    x1, y1 = min(w, math.floor(bx1 - 0.5) + 1), min(h, math.floor(by1 - 0.5) + 1)
    return x0, y0, x1, y1


def _taps(centres: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps (align_corners=False, clamped at the edges) along one axis of length ``n``."""
    u = np.clip(centres, 0.0, n - 1)
    i0 = np.floor(u).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    return i0, i1, (u - i0).astype(np.float32)


def sample(prob: np.ndarray, x0: int, y0: int, x1: int, y1: int, scale: tuple[float, float],
           stride: float) -> np.ndarray:
    """``prob`` (``h x w`` at ``stride`` of the model frame) sampled at the centres of the input
    pixels ``[x0, x1) x [y0, y1)``; ``scale = (sx, sy)`` input pixels per model pixel."""
    sx, sy = scale
    h, w = prob.shape
    ux = ((np.arange(x0, x1) + 0.5) / sx) / stride - 0.5
    uy = ((np.arange(y0, y1) + 0.5) / sy) / stride - 0.5
    cx0, cx1, fx = _taps(ux, w)
    cy0, cy1, fy = _taps(uy, h)
    rows = prob[cy0] * (1 - fy)[:, None] + prob[cy1] * fy[:, None]  # (bh, w)
    return (rows[:, cx0] * (1 - fx) + rows[:, cx1] * fx).astype(np.float32)


def crop_to_box(prob: np.ndarray, box: np.ndarray, image_size: tuple[int, int], scale: tuple[float, float],
                stride: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Step 3: ``prob`` sampled at the input pixels whose centres lie in ``box``, and the crop's
    top-left pixel; an empty ``(0, 0)`` crop at ``(0, 0)`` when no pixel centre does."""
    x0, y0, x1, y1 = box_pixels(box, image_size)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), np.float32), (0, 0)
    return sample(prob, x0, y0, x1, y1, scale, stride), (x0, y0)


@dataclass(frozen=True)
class Assembly:
    """One detection's four steps. ``linear``/``sigmoid`` at prototype resolution; ``crop`` (the
    sigmoid inside the box, input pixels) and ``mask`` start at pixel ``offset = (x0, y0)``."""

    coef: np.ndarray
    linear: np.ndarray
    sigmoid: np.ndarray
    crop: np.ndarray
    mask: np.ndarray
    offset: tuple[int, int]


def assemble_one(proto: np.ndarray, coef: np.ndarray, box: np.ndarray, image_size: tuple[int, int],
                 scale: tuple[float, float], stride: float, threshold: float = MASK_THRESHOLD) -> Assembly:
    """Every step for one detection (``box`` in input-image xyxy)."""
    lin = linear(proto, coef)[0]
    sig = sigmoid(lin)
    crop, offset = crop_to_box(sig, box, image_size, scale, stride)
    return Assembly(np.asarray(coef, np.float32).ravel(), lin, sig, crop, crop >= np.float32(threshold), offset)


def assemble(proto: np.ndarray, coefs: np.ndarray, boxes: np.ndarray, image_size: tuple[int, int],
             scale: tuple[float, float], stride: float,
             threshold: float = MASK_THRESHOLD) -> tuple[list[np.ndarray], np.ndarray]:
    """Every detection's thresholded mask as ``(crops, offsets)`` (a :class:`MaskSet`'s parts):
    the same steps as :func:`assemble_one`, the logits computed in one product."""
    sig = sigmoid(linear(proto, coefs)) if len(boxes) else np.zeros((0,) + proto.shape[1:], np.float32)
    crops, offsets = [], np.zeros((len(boxes), 2), np.int32)
    for i, box in enumerate(np.asarray(boxes, np.float32).reshape(-1, 4)):
        crop, offsets[i] = crop_to_box(sig[i], box, image_size, scale, stride)
        crops.append(crop >= np.float32(threshold))
    return crops, offsets


def coefficients(coef_map: np.ndarray, cell: np.ndarray, prior: np.ndarray, k: int) -> np.ndarray:
    """``(n, k)`` the coefficients of the predictors at ``cell`` ``(n, 2)`` row/col and ``prior``
    ``(n,)`` from the head's ``(B k, S_h, S_w)`` output."""
    cell = np.asarray(cell, np.int64).reshape(-1, 2)
    prior = np.asarray(prior, np.int64).ravel()
    ch = prior[:, None] * k + np.arange(k)[None, :]
    return coef_map[ch, cell[:, 0:1], cell[:, 1:2]].astype(np.float32)
