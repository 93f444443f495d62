"""One-stage detectors' dense heads in numpy: scores per level, threshold and top-k, box decoding.

Why numpy copies of torchvision's arithmetic: the Internals dock redraws on every click from a
cached bundle without torch, and tests recompute each drawn number here and compare it with
torchvision (RetinaNet/SSD ``BoxCoder``, FCOS ``BoxLinearCoder``, the ``postprocess_detections``
threshold and top-k per level). Layout follows the heads' flattened outputs: per level, location
(row-major) then anchor, then class, so ``flat = anchor_index * K + class``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segviewer.core.errors import SegviewerError

__all__ = [
    "BBOX_XFORM_CLIP", "sigmoid", "softmax", "class_scores", "score_map", "LevelCounts", "level_counts",
    "decode_deltas", "decode_distances", "centerness", "ltrb_targets",
]

_F32 = np.float32
#: torchvision's ``BoxCoder`` clamps dw, dh at log(1000 / 16) before exp.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic, as torch computes it for float32 logits (within 1 ulp; a large negative
    logit's exp overflows to inf and gives exactly 0). float64 would cost 5x on millions of scores."""
    x = np.asarray(x, _F32)
    with np.errstate(over="ignore"):
        return (_F32(1) / (_F32(1) + np.exp(-x))).astype(_F32)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """float32 softmax over ``axis`` (SSD's class scores)."""
    z = np.asarray(x, np.float64)
    z = np.exp(z - z.max(axis=axis, keepdims=True))
    return (z / z.sum(axis=axis, keepdims=True)).astype(_F32)


def class_scores(logits: np.ndarray, kind: str, ctrness: np.ndarray | None = None) -> np.ndarray:
    """``(N, K)`` scores the model thresholds: RetinaNet ``sigmoid``, FCOS ``sqrt(sigmoid(cls) *
    sigmoid(centerness))``, SSD ``softmax`` (column 0 is background)."""
    if kind == "retinanet":
        return sigmoid(logits)
    if kind == "fcos":
        if ctrness is None:
            raise SegviewerError("FCOS scores need the centerness logits.")
        return np.sqrt(sigmoid(logits) * sigmoid(np.asarray(ctrness).reshape(-1, 1))).astype(_F32)
    if kind == "ssd":
        return softmax(logits)
    raise SegviewerError(f"Unknown dense head {kind!r}; use retinanet, fcos or ssd.")


def score_map(scores: np.ndarray, grid: tuple[int, int], anchors_per_location: int,
              class_id: int | None = None, skip_background: bool = False) -> np.ndarray:
    """``(h, w)`` map of one level: the max over anchors (and over classes, or of ``class_id``)
    of ``(h * w * A, K)`` scores, so the view shows where that level fires."""
    h, w = (int(v) for v in grid)
    s = np.asarray(scores).reshape(h, w, int(anchors_per_location), -1)
    if class_id is None:
        s = s[..., 1:] if skip_background else s
        return s.max(axis=(2, 3)).astype(_F32)
    if not 0 <= class_id < s.shape[-1]:
        raise SegviewerError(f"Class {class_id} does not exist; the head has {s.shape[-1]} outputs.")
    return s[..., class_id].max(axis=2).astype(_F32)


@dataclass(frozen=True)
class LevelCounts:
    """One level's funnel: scores passing the threshold, then the top-k the model keeps."""

    total: int  # anchor x class scores on the level
    above: int  # strictly above the score threshold (torchvision's ``>``)
    kept: int  # min(above, topk)


def level_counts(scores: Sequence[np.ndarray], score_thresh: float, topk: int) -> list[LevelCounts]:
    """Per level, how many scores pass ``score_thresh`` and how many the top-k keeps (RetinaNet
    and FCOS: ``scores`` are per-level ``(n, K)``; for SSD pass one ``(n,)`` array per class)."""
    out = []
    thr = _F32(score_thresh)
    for s in scores:
        s = np.asarray(s, _F32)
        above = int((s > thr).sum())
        out.append(LevelCounts(int(s.size), above, min(above, int(topk))))
    return out


def decode_deltas(deltas: np.ndarray, anchors: np.ndarray, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
                  clip: float = BBOX_XFORM_CLIP) -> np.ndarray:
    """``(N, 4)`` xyxy boxes from Faster R-CNN deltas (RetinaNet weights 1, SSD 10, 10, 5, 5),
    float32 step by step as torchvision's ``BoxCoder.decode_single``."""
    d = np.asarray(deltas, _F32).reshape(-1, 4)
    a = np.asarray(anchors, _F32).reshape(-1, 4)
    wx, wy, ww, wh = (_F32(v) for v in weights)
    widths, heights = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    cx, cy = a[:, 0] + _F32(0.5) * widths, a[:, 1] + _F32(0.5) * heights
    dx, dy = d[:, 0] / wx, d[:, 1] / wy
    dw, dh = np.minimum(d[:, 2] / ww, _F32(clip)), np.minimum(d[:, 3] / wh, _F32(clip))
    pcx, pcy = dx * widths + cx, dy * heights + cy
    pw, ph = np.exp(dw).astype(_F32) * widths, np.exp(dh).astype(_F32) * heights
    hw, hh = _F32(0.5) * pw, _F32(0.5) * ph
    return np.stack([pcx - hw, pcy - hh, pcx + hw, pcy + hh], 1).astype(_F32)


def decode_distances(rel: np.ndarray, anchors: np.ndarray, normalize_by_size: bool = True) -> np.ndarray:
    """``(N, 4)`` xyxy boxes from FCOS's (l, t, r, b) distances to the anchor centre, scaled by
    the anchor's size as torchvision's ``BoxLinearCoder(normalize_by_size=True)``."""
    r = np.asarray(rel, _F32).reshape(-1, 4)
    a = np.asarray(anchors, _F32).reshape(-1, 4)
    cx, cy = _F32(0.5) * (a[:, 0] + a[:, 2]), _F32(0.5) * (a[:, 1] + a[:, 3])
    if normalize_by_size:
        w, h = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
        r = r * np.stack([w, h, w, h], 1)
    return np.stack([cx - r[:, 0], cy - r[:, 1], cx + r[:, 2], cy + r[:, 3]], 1).astype(_F32)


def ltrb_targets(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``(N, 4)`` distances (l, t, r, b) from points ``(N, 2)`` to the sides of one xyxy box."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    b = np.asarray(box, np.float64).reshape(4)
    return np.stack([p[:, 0] - b[0], p[:, 1] - b[1], b[2] - p[:, 0], b[3] - p[:, 1]], 1)


def centerness(ltrb: np.ndarray) -> np.ndarray:
    """FCOS's centerness ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))``; 0 outside."""
    d = np.asarray(ltrb, np.float64).reshape(-1, 4)
    lr = np.minimum(d[:, 0], d[:, 2]) / np.maximum(np.maximum(d[:, 0], d[:, 2]), 1e-12)
    tb = np.minimum(d[:, 1], d[:, 3]) / np.maximum(np.maximum(d[:, 1], d[:, 3]), 1e-12)
    inside = d.min(axis=1) > 0
    return np.where(inside, np.sqrt(np.clip(lr * tb, 0, None)), 0.0)
