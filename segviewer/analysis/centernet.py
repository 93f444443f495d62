"""CenterNet's decoding in numpy: heatmap peaks by 3x3 max-pool, top-k, boxes from the heads.

One implementation, used by the adapter's post-processing, by training's evaluation and by the
Internals view (which draws exactly these arrays). Coordinates of the heads' maps are output
cells: cell ``(y, x)`` spans ``[x, x + 1) x [y, y + 1)``; an image pixel coordinate is
``stride * cell coordinate`` (edges, not centres, as the rest of segviewer).

Paper (REFERENCE.md): peaks = points equal to the 3 x 3 max-pool of the heatmap (no NMS), top
100; box = (x + dx - w/2, y + dy - h/2, x + dx + w/2, y + dy + h/2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOP_K = 100


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic, numerically safe for large |x| (the heatmap logits start at -2.2)."""
    x = np.asarray(x, np.float32)
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x)))).astype(np.float32)


def maxpool3(heat: np.ndarray) -> np.ndarray:
    """3 x 3 max-pool, stride 1, padding 1 (padded with -inf) over the last two axes."""
    h, w = heat.shape[-2:]
    pad = [(0, 0)] * (heat.ndim - 2) + [(1, 1), (1, 1)]
    p = np.pad(heat, pad, constant_values=-np.inf)
    out = np.full(heat.shape, -np.inf, dtype=heat.dtype)
    for dy in range(3):
        for dx in range(3):
            np.maximum(out, p[..., dy:dy + h, dx:dx + w], out=out)
    return out


def peak_mask(heat: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` bool: the local maxima (a point equal to its 3 x 3 max-pool), the paper's NMS."""
    return heat == maxpool3(heat)


@dataclass(frozen=True)
class Peaks:
    """Every local maximum, and the top-k of them (by score, then class, y, x) as arrays."""

    all_cyx: np.ndarray  # (M, 3) int: class, y, x of every local maximum
    cls: np.ndarray  # (K,) int, 0-based heatmap channel
    ys: np.ndarray  # (K,) int
    xs: np.ndarray  # (K,) int
    scores: np.ndarray  # (K,) float32


def find_peaks(heat: np.ndarray, k: int = TOP_K) -> Peaks:
    """The local maxima of ``heat`` ``(C, H, W)`` (probabilities) and the ``k`` highest of them."""
    mask = peak_mask(heat)
    cyx = np.argwhere(mask)
    s = heat[mask]  # same row-major order as argwhere
    order = np.argsort(-s, kind="stable")[:k]
    top = cyx[order]
    return Peaks(cyx, top[:, 0], top[:, 1], top[:, 2], s[order].astype(np.float32))


def decode_boxes(ys: np.ndarray, xs: np.ndarray, offset: np.ndarray, size: np.ndarray,
                 stride: float) -> np.ndarray:
    """``(K, 4)`` xyxy boxes in input pixels of the peaks at ``(ys, xs)``: the centre is the cell
    corner plus the offset head, the extent the size head, both in output cells times ``stride``."""
    ys = np.asarray(ys, np.int64)
    xs = np.asarray(xs, np.int64)
    cx = xs + offset[0, ys, xs]
    cy = ys + offset[1, ys, xs]
    w, h = size[0, ys, xs], size[1, ys, xs]
    return (stride * np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)).astype(np.float32)


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (K, 4) xyxy in input pixels
    cls: np.ndarray  # (K,) 0-based heatmap channel
    scores: np.ndarray  # (K,)
    peaks: Peaks


def decode(heatmap_logits: np.ndarray, offset: np.ndarray, size: np.ndarray, stride: float,
           k: int = TOP_K) -> Detections:
    """Raw head outputs of one image (``(C, H, W)``, ``(2, H, W)``, ``(2, H, W)``) to its top-k
    detections (no threshold: the caller picks one; AP wants them all)."""
    heat = sigmoid(heatmap_logits)
    pk = find_peaks(heat, k)
    return Detections(decode_boxes(pk.ys, pk.xs, offset, size, stride), pk.cls, pk.scores, pk)
