"""A mask's real quality against its score (Mask Scoring R-CNN's argument), numpy only.

Mask R-CNN scores a mask by its box's classification confidence; Mask Scoring R-CNN multiplies
that by a predicted mask IoU. Whether a rule ranks masks by their quality is measured here: each
detection's *real* mask IoU (with the best ground-truth mask of its own class; 0 when there is
none, as a wrong-class detection counts as a false positive in mask AP), and the Pearson
correlation between a rule's scores and those IoUs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["mask_iou_matrix", "real_ious", "pearson", "RULE_FIELDS", "has_rule_scores", "rescore",
           "rule_correlations"]

#: What ``segviewer predict`` writes beside ``score`` for Mask Scoring R-CNN: s_cls and s_iou.
RULE_FIELDS = ("box_score", "mask_iou")


def mask_iou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU between ``pred`` ``(N, H, W)`` and ``gt`` ``(M, H, W)`` boolean masks."""
    n, m = len(pred), len(gt)
    if n == 0 or m == 0:
        return np.zeros((n, m), np.float64)
    p = np.asarray(pred, bool).reshape(n, -1).astype(np.float32)
    g = np.asarray(gt, bool).reshape(m, -1).astype(np.float32)
    inter = p @ g.T
    union = p.sum(1)[:, None] + g.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0).astype(np.float64)


def real_ious(pred_labels: np.ndarray, pred_masks: np.ndarray, gt_labels: np.ndarray,
              gt_masks: np.ndarray) -> np.ndarray:
    """(N,) each predicted mask's IoU with the best ground-truth mask of the same class (0 if none)."""
    pl, gl = np.asarray(pred_labels).reshape(-1), np.asarray(gt_labels).reshape(-1)
    iou = mask_iou_matrix(pred_masks, gt_masks)
    if iou.size == 0:
        return np.zeros(len(pl), np.float32)
    same = pl[:, None] == gl[None, :]
    return np.where(same, iou, 0.0).max(1).astype(np.float32)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's correlation of two equal-length samples; nan when either is constant or too short."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if len(x) != len(y):
        raise ValueError(f"pearson needs equal lengths, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    den = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / den) if den > 0 else float("nan")


def has_rule_scores(results: Sequence[Mapping[str, Any]]) -> bool:
    """Whether COCO results carry both scoring rules' inputs (every record: ``box_score``,
    ``mask_iou`` and a mask), as ``segviewer predict`` writes them for Mask Scoring R-CNN."""
    return bool(results) and all(isinstance(r, Mapping) and "segmentation" in r
                                 and all(isinstance(r.get(k), (int, float)) for k in RULE_FIELDS)
                                 for r in results)


def rescore(results: Sequence[Mapping[str, Any]], rule: str) -> list[dict[str, Any]]:
    """The records with ``score`` by one rule: ``"box"`` s_cls (Mask R-CNN), ``"mask"``
    s_cls * s_iou (Mask Scoring R-CNN), multiplied in float32 as the adapter does, so the mask
    rule reproduces the adapter's own scores bit for bit."""
    if rule not in ("box", "mask"):
        raise ValueError(f"unknown scoring rule {rule!r}; use 'box' or 'mask'")
    out = []
    for r in results:
        box = np.float32(r["box_score"])
        s = box if rule == "box" else np.float32(box * np.float32(r["mask_iou"]))
        out.append({**r, "score": float(s)})
    return out


def rule_correlations(gt: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Pearson's r between each rule's score and the real mask IoU over every result (its IoU with
    the best non-crowd ground-truth mask of its category in its image, 0 when none, as in
    :func:`real_ious`): ``box`` (s_cls), ``mask`` (s_cls * s_iou), ``mask_iou`` (s_iou alone),
    and ``detections`` (how many). ``results`` carry :data:`RULE_FIELDS` (:func:`has_rule_scores`)."""
    from segviewer.core.coco_results import decode_segmentation

    sizes = {im["id"]: (int(im["height"]), int(im["width"])) for im in gt["images"]}
    by_image: dict[Any, list[Mapping[str, Any]]] = {}
    for a in gt["annotations"]:
        if not a.get("iscrowd"):
            by_image.setdefault(a["image_id"], []).append(a)
    dets: dict[Any, list[Mapping[str, Any]]] = {}
    for r in results:
        dets.setdefault(r["image_id"], []).append(r)
    box, iou, real = [], [], []
    for img, rs in dets.items():
        hw = sizes[img]
        anns = by_image.get(img, [])
        g = np.stack([decode_segmentation(a["segmentation"], hw) for a in anns]) if anns else np.zeros((0, *hw), bool)
        p = np.stack([decode_segmentation(r["segmentation"], hw) for r in rs])
        real.append(real_ious(np.array([r["category_id"] for r in rs]), p,
                              np.array([a["category_id"] for a in anns]), g))
        box.append(np.float32([r["box_score"] for r in rs]))
        iou.append(np.float32([r["mask_iou"] for r in rs]))
    b = np.concatenate(box) if box else np.zeros(0, np.float32)
    i = np.concatenate(iou) if iou else np.zeros(0, np.float32)
    t = np.concatenate(real) if real else np.zeros(0, np.float32)
    return {"box": pearson(b, t), "mask": pearson((b * i).astype(np.float32), t), "mask_iou": pearson(i, t),
            "detections": float(len(t))}
