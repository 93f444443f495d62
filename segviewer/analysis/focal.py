"""Focal loss, visible: RetinaNet's anchor assignment and CE vs FL over one image's anchors.

Why: the paper's claim is that easy negatives (the vast majority of anchors, each with a small
loss) dominate the cross-entropy total, and that ``(1 - p_t)^gamma`` takes that share away. These
functions compute, in numpy, exactly what torchvision computes (``Matcher(0.5, 0.4,
allow_low_quality_matches=True)`` and ``torchvision.ops.sigmoid_focal_loss``), so the view's
numbers can be checked against the library.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segviewer.core.errors import SegviewerError

__all__ = ["BELOW_LOW", "BETWEEN", "assign_anchors", "assign_fcos", "focal_terms", "LossShares", "loss_shares",
           "one_hot_targets", "FocalImage", "ground_truth_boxes"]

BELOW_LOW, BETWEEN = -1, -2  # torchvision's Matcher codes: background, ignored


def assign_anchors(anchors: np.ndarray, gt_boxes: np.ndarray, high: float = 0.5, low: float = 0.4,
                   allow_low_quality: bool = True) -> np.ndarray:
    """Per anchor, the matched ground-truth index, ``BELOW_LOW`` (IoU < low: negative) or
    ``BETWEEN`` (low <= IoU < high: ignored), as torchvision's ``Matcher``; with
    ``allow_low_quality`` every ground truth also claims the anchors tied at its highest IoU
    (whatever that IoU is, as torchvision)."""
    a = np.asarray(anchors, np.float32).reshape(-1, 4)
    g = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
    if len(g) == 0:
        return np.full(len(a), BELOW_LOW, np.int64)
    iou = _iou_f32(g, a)  # (G, N) as torchvision's box_iou, float32
    vals, matches = iou.max(axis=0), iou.argmax(axis=0).astype(np.int64)
    out = matches.copy()
    out[vals < low] = BELOW_LOW
    out[(vals >= low) & (vals < high)] = BETWEEN
    if allow_low_quality:
        best = iou.max(axis=1)
        _, cols = np.nonzero(iou == best[:, None])
        out[cols] = matches[cols]
    return out


def assign_fcos(anchors: np.ndarray, gt_boxes: np.ndarray, per_level: list[int] | tuple[int, ...],
                radius: float = 1.5) -> np.ndarray:
    """FCOS's assignment (torchvision's ``FCOS.compute_loss``): per location the matched ground-truth
    index or ``BELOW_LOW`` (negative; FCOS ignores nothing).

    A location is positive for a box when its centre lies inside the box, within ``radius``
    strides of the box centre (centre sampling), and its largest distance to the box's sides is
    in its level's range (4 to 8 strides; the first level from 0, the last to infinity); among
    several boxes the smallest wins. Computed in float32 in torchvision's order, so ties and
    boundaries fall the same way. ``per_level``: locations per FPN level, in anchor order."""
    a = np.asarray(anchors, np.float32).reshape(-1, 4)
    g = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
    if len(g) == 0:
        return np.full(len(a), BELOW_LOW, np.int64)
    if sum(per_level) != len(a):
        raise SegviewerError(f"{sum(per_level)} locations over the levels, but {len(a)} anchors.")
    centres = (a[:, :2] + a[:, 2:]) / np.float32(2)
    sizes = a[:, 2] - a[:, 0]
    gt_centres = (g[:, :2] + g[:, 2:]) / np.float32(2)
    match = np.abs(centres[:, None, :] - gt_centres[None]).max(axis=2) < np.float32(radius) * sizes[:, None]
    x, y = centres[:, 0:1], centres[:, 1:2]
    dist = np.stack([x - g[None, :, 0], y - g[None, :, 1], g[None, :, 2] - x, g[None, :, 3] - y], axis=2)
    match &= dist.min(axis=2) > 0
    lower = sizes * np.float32(4)
    lower[: per_level[0]] = 0
    upper = sizes * np.float32(8)
    upper[len(a) - per_level[-1]:] = np.inf
    far = dist.max(axis=2)
    match &= (far > lower[:, None]) & (far < upper[:, None])
    areas = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
    weighted = match.astype(np.float32) * (np.float32(1e8) - areas)[None]
    out = weighted.argmax(axis=1).astype(np.int64)
    out[weighted.max(axis=1) < np.float32(1e-5)] = BELOW_LOW
    return out


def _iou_f32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32 IoU with torchvision's operation order (``inter / (area1 + area2 - inter)``)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return (inter / union).astype(np.float32)


def one_hot_targets(matches: np.ndarray, gt_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(N, K)`` float32 targets: 1 at a positive anchor's ground-truth class, else 0 (RetinaNet)."""
    m = np.asarray(matches, np.int64)
    t = np.zeros((len(m), int(num_classes)), np.float32)
    pos = np.flatnonzero(m >= 0)
    t[pos, np.asarray(gt_labels, np.int64)[m[pos]]] = 1.0
    return t


def focal_terms(logits: np.ndarray, targets: np.ndarray, gamma: float = 2.0, alpha: float = 0.25) -> dict[str, np.ndarray]:
    """Element-wise ``p``, ``p_t``, ``ce``, the modulating factor ``(1 - p_t)^gamma`` and ``fl``
    (with ``alpha_t`` when ``alpha >= 0``), the terms of ``torchvision.ops.sigmoid_focal_loss``."""
    if gamma < 0:
        raise SegviewerError(f"gamma must be >= 0, got {gamma}.")
    x = np.asarray(logits, np.float64)
    t = np.asarray(targets, np.float64)
    p = 1.0 / (1.0 + np.exp(-x))
    ce = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))  # BCE-with-logits, stable
    p_t = p * t + (1 - p) * (1 - t)
    mod = (1 - p_t) ** gamma
    fl = ce * mod
    if alpha >= 0:
        fl = (alpha * t + (1 - alpha) * (1 - t)) * fl
    return {"p": p, "p_t": p_t, "ce": ce, "modulating": mod, "fl": fl}


@dataclass(frozen=True)
class LossShares:
    """The image's classification loss split by kind of element (anchor x class)."""

    gamma: float
    alpha: float
    ce_total: float
    fl_total: float
    ce_easy_neg: float  # share (0-1) of the CE total from easy negatives
    fl_easy_neg: float
    n_easy_neg: int
    n_elements: int
    n_positive_anchors: int


def loss_shares(logits: np.ndarray, targets: np.ndarray, valid: np.ndarray | None = None, gamma: float = 2.0,
                alpha: float = 0.25, easy: float = 0.9) -> LossShares:
    """CE and FL totals over the valid (not ignored) anchors and the share of each that comes
    from easy negatives (target 0 and ``p_t > easy``); CE uses no alpha (the paper's baseline)."""
    x = np.asarray(logits, np.float64)
    t = np.asarray(targets, np.float64)
    v = np.ones(len(x), bool) if valid is None else np.asarray(valid, bool)
    x, t = x[v], t[v]
    terms = focal_terms(x, t, gamma, alpha)
    easy_neg = (t == 0) & (terms["p_t"] > easy)
    ce, fl = terms["ce"], terms["fl"]
    ce_tot, fl_tot = float(ce.sum()), float(fl.sum())
    return LossShares(float(gamma), float(alpha), ce_tot, fl_tot,
                      float(ce[easy_neg].sum() / ce_tot) if ce_tot > 0 else 0.0,
                      float(fl[easy_neg].sum() / fl_tot) if fl_tot > 0 else 0.0,
                      int(easy_neg.sum()), int(x.size), int((t.max(axis=1) > 0).sum()) if t.ndim == 2 else 0)


class FocalImage:
    """One image's anchors x classes, prepared once so a gamma / alpha change only re-weights
    (the view's slider): ``p_t`` and CE per valid element; :meth:`shares` equals
    :func:`loss_shares` on the same inputs."""

    def __init__(self, logits: np.ndarray, targets: np.ndarray, valid: np.ndarray | None = None,
                 easy: float = 0.9) -> None:
        v = np.ones(len(logits), bool) if valid is None else np.asarray(valid, bool)
        terms = focal_terms(np.asarray(logits)[v], np.asarray(targets)[v], 0.0, -1.0)
        t = np.asarray(targets)[v]
        pos = t > 0
        easy_neg = ~pos & (terms["p_t"] > easy)
        # flat float32, and the few non-easy / positive terms by index: a slider move is one exp and
        # one sum over all terms, the rest touches only the small sets
        with np.errstate(divide="ignore"):  # log(1 - p_t): (1 - p_t)^gamma = exp(gamma log(1 - p_t))
            self.log_q = np.log(1 - terms["p_t"]).astype(np.float32).ravel()
        self.ce = terms["ce"].astype(np.float32).ravel()
        self.pos_idx = np.flatnonzero(pos.ravel())
        self.hard_idx = np.flatnonzero(~easy_neg.ravel())  # positives and hard negatives
        self.n_easy_neg = int(easy_neg.sum())
        self.n_pos_anchors = int(pos.any(axis=1).sum()) if t.ndim == 2 else 0
        self._ce_total = float(self.ce.sum(dtype=np.float64))
        self._ce_easy = self._ce_total - float(self.ce[self.hard_idx].sum(dtype=np.float64))
        self._buf = np.empty_like(self.ce)
        self._cache: dict[tuple[float, float], LossShares] = {}

    def shares(self, gamma: float, alpha: float) -> LossShares:
        key = (float(gamma), float(alpha))
        if key in self._cache:
            return self._cache[key]
        fl = self._buf
        if gamma != 0:
            np.multiply(self.log_q, np.float32(gamma), out=fl)
            np.exp(fl, out=fl)
            np.multiply(fl, self.ce, out=fl)
        else:
            fl[:] = self.ce
        fl_all = float(fl.sum(dtype=np.float64))
        fl_pos = float(fl[self.pos_idx].sum(dtype=np.float64))
        fl_easy = max(fl_all - float(fl[self.hard_idx].sum(dtype=np.float64)), 0.0)
        if alpha >= 0:  # alpha_t: alpha on positives, 1 - alpha on negatives (a constant per group)
            fl_all = alpha * fl_pos + (1 - alpha) * (fl_all - fl_pos)
            fl_easy = (1 - alpha) * fl_easy
        ce_tot = self._ce_total
        out = LossShares(float(gamma), float(alpha), ce_tot, fl_all,
                         self._ce_easy / ce_tot if ce_tot > 0 else 0.0,
                         fl_easy / fl_all if fl_all > 0 else 0.0,
                         self.n_easy_neg, int(self.ce.size), self.n_pos_anchors)
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[key] = out
        return out


def ground_truth_boxes(result: object, categories: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, int]:
    """``(boxes (G, 4), labels (G,), unmatched)`` in the result's pixels from instance ground truth
    (``boxes`` + ``class_ids``) or a panoptic map's thing segments; classes are matched to the
    model's ``categories`` by name, and a class the model lacks becomes label 0 (counted)."""
    names = {str(c).lower(): i for i, c in enumerate(categories)}
    boxes: list[np.ndarray] = []
    cls_names: list[str] = []
    if getattr(result, "boxes", None) is not None and getattr(result, "class_ids", None) is not None:
        cats = tuple(getattr(result, "categories", ()))
        boxes = list(np.asarray(result.boxes, np.float32).reshape(-1, 4))
        cls_names = [cats[int(c)] if 0 <= int(c) < len(cats) else str(c) for c in result.class_ids]
    elif getattr(result, "segment_ids", None) is not None:
        ids = np.asarray(result.segment_ids)
        for s in result.segments:
            if not s.isthing:
                continue
            ys, xs = np.nonzero(ids == s.id)
            if xs.size:
                boxes.append(np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32))
                cls_names.append(result.categories[s.category_id])
    else:
        raise SegviewerError("The focal-loss view needs instance or panoptic ground truth (boxes).")
    labels = np.array([names.get(n.lower(), -1) for n in cls_names], np.int64)
    unmatched = int((labels < 0).sum())
    labels[labels < 0] = 0
    return np.asarray(boxes, np.float32).reshape(-1, 4), labels, unmatched
