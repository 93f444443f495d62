"""Which predicted and ground-truth segments are right and wrong, per pixel (no colours here).

Segments (panoptic) or instance masks are matched to ground truth at IoU > 0.5
(:mod:`segviewer.analysis.matching`, the same rules as PQ). Each pixel gets one status:

* ``TP``: a matched predicted segment;
* ``FP``: an unmatched predicted segment that counts as a false positive;
* ``FN``: an unmatched ground-truth segment (crowd excluded);
* ``FP_FN``: both at once, e.g. a thing predicted with the wrong class;
* ``IGNORED``: an unmatched prediction that is mostly on void or crowd.

Missed and spurious segments are painted over matched ones, so an object swallowed by a matched
stuff segment still shows. :meth:`ErrorMap.info_at` gives the status, ids, matched IoU and, for
instances, the TIDE error type (:mod:`segviewer.analysis.tide`) under a point for hover.
The colours are :mod:`segviewer.render.error_layer`'s; this module never imports render.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segviewer.analysis.matching import (
    SegmentMatches,
    index_values,
    mask_iou_matrix,
    match_instances,
    match_segments,
)
from segviewer.core.results import Detections, PanopticMap

__all__ = ["ErrorMap", "STATUS_NAMES", "NONE", "TP", "FP", "FN", "FP_FN", "IGNORED", "panoptic_errors",
           "instance_errors"]

NONE, TP, FP, FN, FP_FN, IGNORED = range(6)
STATUS_NAMES = ("none", "TP", "FP", "FN", "FP+FN", "ignored")


@dataclass(frozen=True, eq=False)
class ErrorMap:
    """Per-pixel error status plus what hover needs.

    ``pred_ids`` / ``gt_ids`` hold, per pixel, the predicted / ground-truth segment id (panoptic) or
    instance index + 1 (instances; the topmost mask), 0 for none. ``pred_iou`` maps a predicted id
    to its matched IoU; ``best_iou`` to its best same-class IoU (matched or not).
    """

    status: np.ndarray  # (H, W) uint8, one of the status codes
    pred_ids: np.ndarray  # (H, W) int32
    gt_ids: np.ndarray  # (H, W) int32
    pred_iou: dict[int, float]
    best_iou: dict[int, float]
    gt_match: dict[int, int]  # gt id -> matched pred id
    counts: dict[str, int]  # TP / FP / FN segment counts
    pred_type: dict[int, str] = field(default_factory=dict)  # pred id -> TIDE error type (instances)
    gt_type: dict[int, str] = field(default_factory=dict)  # gt id -> "missed" (instances)
    error_counts: dict[str, int] = field(default_factory=dict)  # TIDE type -> count (instances)

    @property
    def image_size(self) -> tuple[int, int]:
        return (int(self.status.shape[0]), int(self.status.shape[1]))

    def nbytes(self) -> int:
        return int(self.status.nbytes + self.pred_ids.nbytes + self.gt_ids.nbytes)

    def info_at(self, x: float, y: float) -> dict[str, Any] | None:
        """``{"status", "pred_id", "gt_id", "iou", "best_iou"}`` under image point (x, y), or None."""
        h, w = self.image_size
        col, row = int(np.floor(x)), int(np.floor(y))
        if not (0 <= row < h and 0 <= col < w):
            return None
        pid, gid = int(self.pred_ids[row, col]), int(self.gt_ids[row, col])
        return {"status": STATUS_NAMES[int(self.status[row, col])], "pred_id": pid or None,
                "gt_id": gid or None, "iou": self.pred_iou.get(pid), "best_iou": self.best_iou.get(pid),
                "gt_matched_to": self.gt_match.get(gid),
                "error_type": self.pred_type.get(pid) or self.gt_type.get(gid) or None}


def _status_map(pred_side: np.ndarray, gt_side: np.ndarray) -> np.ndarray:
    """Combine per-pixel prediction status (TP/FP/IGNORED/NONE) and ground-truth FN flags."""
    status = pred_side.astype(np.uint8)
    fn = gt_side
    status[fn & (status == FP)] = FP_FN
    status[fn & (status != FP_FN)] = FN
    return status


def panoptic_errors(pred: PanopticMap, gt: PanopticMap) -> ErrorMap:
    """The error map of a panoptic prediction (segments matched as PQ matches them)."""
    m: SegmentMatches = match_segments(pred, gt)
    p_status = np.zeros(len(pred.segments) + 1, np.uint8)
    for k, s in enumerate(pred.segments):
        p_status[k + 1] = TP if s.id in m.pred_to_gt else IGNORED if s.id in m.ignored_pred else FP
    g_fn = np.zeros(len(gt.segments) + 1, bool)
    fns = set(m.false_negatives)
    for k, s in enumerate(gt.segments):
        g_fn[k + 1] = s.id in fns
    p_status = np.append(p_status, NONE)  # ids the segments do not list read as nothing
    g_fn = np.append(g_fn, False)
    status = _status_map(p_status[_segment_index(pred)], g_fn[_segment_index(gt)])
    counts = {"TP": len(m.pred_to_gt), "FP": len(m.false_positives), "FN": len(m.false_negatives)}
    return ErrorMap(status, np.asarray(pred.segment_ids, np.int32), np.asarray(gt.segment_ids, np.int32),
                    {k: v[1] for k, v in m.pred_to_gt.items()}, dict(m.best_iou_pred),
                    {k: v[0] for k, v in m.gt_to_pred.items()}, counts)


def _segment_index(pm: PanopticMap) -> np.ndarray:
    """Per pixel: 0 void, ``k + 1`` for ``pm.segments[k]``, ``len + 1`` for an unlisted id."""
    return index_values(np.asarray(pm.segment_ids), np.array([s.id for s in pm.segments], np.int64))


def _paint_ids(dets: Detections, order: np.ndarray) -> np.ndarray:
    """``(H, W)`` int32: index + 1 of the last-painted instance mask covering each pixel."""
    assert dets.masks is not None
    out = np.zeros(dets.image_size, np.int32)
    for i in order:
        c = dets.masks.crops[i]
        if c.size:
            x0, y0 = dets.masks.offsets[i]
            out[y0:y0 + c.shape[0], x0:x0 + c.shape[1]][c] = i + 1
    return out


def instance_errors(pred: Detections, gt: Detections, iou_thresh: float = 0.5) -> ErrorMap:
    """The error map of instance masks (greedy matching by score at IoU > ``iou_thresh``, same class)."""
    m = match_instances(pred, gt, iou_thresh)
    # paint low scores first so the most confident mask is on top
    pids = _paint_ids(pred, np.argsort(pred.scores, kind="stable"))
    gids = _paint_ids(gt, np.arange(len(gt)))
    p_status = np.concatenate([[NONE], np.where(m.pred_match >= 0, TP, FP)]).astype(np.uint8)
    g_fn = np.concatenate([[False], m.gt_match < 0])
    status = _status_map(p_status[pids], g_fn[gids])
    ious = mask_iou_matrix(pred, gt)
    best = {i + 1: float(ious[i].max()) if ious.shape[1] else 0.0 for i in range(len(pred))}
    counts = {"TP": int((m.pred_match >= 0).sum()), "FP": int((m.pred_match < 0).sum()),
              "FN": int((m.gt_match < 0).sum())}
    pred_type, gt_type, error_counts = _tide_types(pred, gt, ious, iou_thresh)
    return ErrorMap(status, pids, gids,
                    {i + 1: float(m.pred_iou[i]) for i in np.flatnonzero(m.pred_match >= 0)}, best,
                    {int(j) + 1: int(m.gt_match[j]) + 1 for j in np.flatnonzero(m.gt_match >= 0)}, counts,
                    pred_type, gt_type, error_counts)


def _tide_types(pred: Detections, gt: Detections, ious: np.ndarray, iou_thresh: float
                ) -> tuple[dict[int, str], dict[int, str], dict[str, int]]:
    """TIDE type per prediction / missed ground truth (ids = index + 1), when both share classes."""
    if pred.categories != gt.categories:
        return {}, {}, {}
    from segviewer.analysis.tide import ERROR_TYPES, MISS, classify_image

    ev = classify_image(pred, gt, "segm", pos_thresh=iou_thresh, ious=ious, max_dets=max(len(pred), 1))
    ptype = {int(i) + 1: ERROR_TYPES[int(ev.pred_type[i])] for i in np.flatnonzero(ev.pred_type >= 0)}
    gtype = {int(j) + 1: "missed" for j in np.flatnonzero(ev.gt_type == MISS)}
    return ptype, gtype, ev.counts()
