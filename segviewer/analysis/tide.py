"""Error types of a detector and what each costs in AP: TIDE (Bolya et al., ECCV 2020).

Every false positive and every missed ground truth gets ONE type, tested in the paper's order
(foreground IoU ``t_f = 0.5``, background IoU ``t_b = 0.1``; "same-class IoU" is the IoU with a
ground truth of the prediction's class, used or not):

* ``background``: the image has no ground truth, or the prediction's IoU with every ground
  truth is at most ``t_b`` (tested last but one, after the three below);
* ``localisation`` (Loc): ``t_b <= best same-class IoU <= t_f``;
* ``classification`` (Cls): IoU ``>= t_f`` with a ground truth of another class;
* ``duplicate`` (Dupe): IoU ``>= t_f`` with a same-class ground truth that a higher-scoring
  prediction already matched;
* ``both`` (Cls and Loc): none of the above (``t_b <`` IoU with another class ``< t_f``);
* ``missed``: a ground truth no prediction matched and that no Cls/Loc error could fix.

Matching is COCO's at one threshold: predictions by descending score (the first ``max_dets`` per
image), each takes the unused same-class ground truth of highest IoU when it is ``>= t_f``.
AP is the COCO 101-point interpolated AP at ``t_f``, the mean over classes with a prediction
or a ground truth (a class predicted but never annotated counts with AP 0, as in the paper's
code). Each type's dAP is how much that mAP rises when only errors of that type are fixed:

* Cls: the prediction takes the ground truth's class and becomes a true positive; Loc: it
  becomes a true positive of its own class; when several Cls/Loc errors point at one ground
  truth only the highest-scoring one is fixed (the others are removed), and one pointing at an
  already matched ground truth is removed;
* Dupe, Background, Both: the prediction is removed;
* Missed: the ground truth is removed from the count of positives.

A negative dAP (a fix that lowers AP by binning) is reported as 0, as the paper's code does.
These are the rules of the authors' package ``tidecv`` (``quantify.py``, ``errors/*.py``),
written independently on numpy; tests compare the two on a generated dataset.
Crowd ground truth: the paper treats crowd regions as "ignore" regions; here crowd annotations
must be filtered out before (``Detections`` carries no crowd flag).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segviewer.core.errors import BadDatasetError
from segviewer.core.results import Detections

__all__ = ["ERROR_TYPES", "SHORT_NAMES", "ImageErrors", "TideReport", "classify_image", "tide_evaluate", "tide_from_images",
           "iou_matrix"]

#: The six main error types, in the paper's order; a value of ImageErrors.pred_type / gt_type.
ERROR_TYPES = ("classification", "localisation", "both", "duplicate", "background", "missed")
SHORT_NAMES = {"classification": "Cls", "localisation": "Loc", "both": "Both", "duplicate": "Dupe",
               "background": "Bkg", "missed": "Miss"}
CLS, LOC, BOTH, DUPE, BKG, MISS = range(6)
TP_TYPE, NO_TYPE = -1, -2  # pred_type of a matched prediction / of one beyond max_dets


def iou_matrix(pred: Detections, gt: Detections, mode: str) -> np.ndarray:
    """``(N_pred, N_gt)`` box (``"bbox"``) or mask (``"segm"``) IoU."""
    if mode == "bbox":
        from segviewer.core.geometry import box_iou

        return box_iou(pred.boxes, gt.boxes)
    if mode == "segm":
        from segviewer.analysis.matching import mask_iou_matrix

        return mask_iou_matrix(pred, gt)
    raise BadDatasetError(f"unknown IoU type {mode!r}; use bbox or segm")


@dataclass
class ImageErrors:
    """One image's matching and error types.

    ``pred_type[i]`` is an index into :data:`ERROR_TYPES`, ``-1`` for a true positive, ``-2`` for a
    prediction past ``max_dets`` (not evaluated); ``gt_type[j]`` is ``MISS`` (5) for a missed
    ground truth, ``-1`` for a matched one, ``-2`` for one left unmatched that a Cls/Loc error
    would fix (the paper counts it under that error, not as missed). ``pred_gt[i]`` is the ground
    truth an error refers to (its match for a TP), -1 for none.
    """

    pred_type: np.ndarray
    gt_type: np.ndarray
    pred_gt: np.ndarray
    pred_match: np.ndarray  # matched gt index or -1
    pred_class: np.ndarray  # class index per prediction
    gt_class: np.ndarray
    scores: np.ndarray

    def counts(self) -> dict[str, int]:
        """Errors per type on this image."""
        out = {t: int(np.count_nonzero(self.pred_type == k)) for k, t in enumerate(ERROR_TYPES) if k != MISS}
        out["missed"] = int(np.count_nonzero(self.gt_type == MISS))
        return out

    def type_of_pred(self, i: int) -> str:
        k = int(self.pred_type[i])
        return "TP" if k == TP_TYPE else "" if k == NO_TYPE else ERROR_TYPES[k]


def classify_image(pred: Detections, gt: Detections, mode: str = "segm", pos_thresh: float = 0.5,
                   bg_thresh: float = 0.1, max_dets: int = 100, ious: np.ndarray | None = None
                   ) -> ImageErrors:
    """Match one image at ``pos_thresh`` and give each false positive / negative its TIDE type.

    ``pred`` and ``gt`` must index the same category list (see evaluation.remap_detections)."""
    if pred.categories != gt.categories:
        raise BadDatasetError("prediction and ground truth use different category lists")
    n, m = len(pred), len(gt)
    iou = iou_matrix(pred, gt, mode) if ious is None else np.asarray(ious, np.float64)
    order = np.argsort(-pred.scores.astype(np.float64), kind="stable")[:max_dets]
    pc, gc = pred.class_ids.astype(np.int64), gt.class_ids.astype(np.int64)
    ptype = np.full(n, NO_TYPE, np.int64)
    pgt = np.full(n, -1, np.int64)
    pmatch = np.full(n, -1, np.int64)
    gused = np.zeros(m, bool)
    if m:
        same = pc[:, None] == gc[None, :]
        cls_iou = iou * same
        buf = cls_iou.copy()
        for i in order:  # COCO's greedy matching at one threshold
            j = int(np.argmax(buf[i]))
            if buf[i, j] >= pos_thresh:
                pmatch[i], pgt[i], gused[j] = j, j, True
                buf[:, j] = 0
        noncls_iou = iou * ~same
        used_cls = cls_iou * gused[None, :]
    gusable = np.zeros(m, bool)
    for i in order:
        if pmatch[i] >= 0:
            ptype[i] = TP_TYPE
            continue
        if not m:
            ptype[i] = BKG
            continue
        j = int(np.argmax(cls_iou[i]))
        if bg_thresh <= cls_iou[i, j] <= pos_thresh:
            ptype[i], pgt[i] = LOC, j
            gusable[j] |= not gused[j]
            continue
        j = int(np.argmax(noncls_iou[i]))
        if noncls_iou[i, j] >= pos_thresh:
            ptype[i], pgt[i] = CLS, j
            gusable[j] |= not gused[j]
            continue
        j = int(np.argmax(used_cls[i]))
        if used_cls[i, j] >= pos_thresh:
            ptype[i], pgt[i] = DUPE, j
            continue
        if iou[i].max() <= bg_thresh:
            ptype[i] = BKG
            continue
        ptype[i] = BOTH
    gtype = np.where(gused, TP_TYPE, np.where(gusable, NO_TYPE, MISS)).astype(np.int64)
    return ImageErrors(ptype, gtype, pgt, pmatch, pc, gc, pred.scores.astype(np.float64))


def _class_ap(scores: np.ndarray, tp: np.ndarray, n_gt: int) -> float:
    """COCO's 101-point interpolated AP (percent) of one class's ranked predictions."""
    if n_gt <= 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    hit = tp[order].astype(np.float64)
    ntp = np.cumsum(hit)
    prec = ntp / np.arange(1, len(hit) + 1)
    rec = ntp / n_gt
    if not len(prec):
        return 0.0
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    idx = np.searchsorted(rec, np.arange(101) / 100, side="left")
    y = np.where(idx < len(prec), prec[np.minimum(idx, len(prec) - 1)], 0.0)
    return float(y.sum() / 101 * 100)


def _map(points: dict[int, list[tuple[float, bool]]], n_gt: dict[int, int]) -> float:
    aps = []
    for c in set(points) | set(n_gt):
        pts = points.get(c, [])
        g = n_gt.get(c, 0)
        if not pts and g == 0:
            continue
        s = np.array([p[0] for p in pts], np.float64)
        t = np.array([p[1] for p in pts], bool)
        aps.append(_class_ap(s, t, g))
    return float(sum(aps) / len(aps)) if aps else 0.0


@dataclass
class TideReport:
    """A dataset's TIDE numbers for one IoU type: AP50 (percent), each type's count and dAP
    (AP points), counts per class (the prediction's class; a missed ground truth's own class)
    and per image (in the order given)."""

    mode: str
    ap: float
    dap: dict[str, float]
    counts: dict[str, int]
    per_class: dict[str, dict[str, int]] = field(default_factory=dict)
    per_image: list[dict[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "ap50": self.ap, "dAP": dict(self.dap), "counts": dict(self.counts),
                "per_class": {k: dict(v) for k, v in self.per_class.items()}}


def tide_evaluate(pairs: Sequence[tuple[Detections, Detections]], mode: str = "segm",
                  pos_thresh: float = 0.5, bg_thresh: float = 0.1, max_dets: int = 100,
                  images: Sequence[ImageErrors] | None = None) -> TideReport:
    """TIDE over ``(prediction, ground truth)`` pairs sharing one category list (module docstring).

    ``images`` may pass :func:`classify_image` results already computed for these pairs."""
    if not pairs:
        raise BadDatasetError("no image pairs to evaluate")
    cats = pairs[0][1].categories
    for k, (p, g) in enumerate(pairs):
        if g.categories != cats or p.categories != cats:
            raise BadDatasetError(f"image {k}: prediction and ground truth use another category list")
    evs = list(images) if images is not None else [
        classify_image(p, g, mode, pos_thresh, bg_thresh, max_dets) for p, g in pairs]
    return tide_from_images(evs, cats, mode)


def tide_from_images(evs: Sequence[ImageErrors], cats: Sequence[str], mode: str = "segm") -> TideReport:
    """TIDE from per-image :func:`classify_image` results alone (a dataset's images need not be
    kept in memory: classify each as it is read, keep only these)."""
    cats = tuple(cats)
    base: dict[int, list[tuple[float, bool]]] = {}
    n_gt: dict[int, int] = {}
    # error records: (type, pred class, score, target key (image, gt) or None, gt class)
    errs: list[tuple[int, int, float, tuple[int, int] | None, int]] = []
    missed: list[int] = []
    best: dict[tuple[int, int], tuple[float, int]] = {}  # gt -> (best score, error index) for Cls/Loc
    for k, ev in enumerate(evs):
        for c in ev.gt_class:
            n_gt[int(c)] = n_gt.get(int(c), 0) + 1
        for i in np.argsort(-ev.scores, kind="stable"):  # score order: ties resolve as the paper's code
            if ev.pred_type[i] == NO_TYPE:
                continue
            t, c, s = int(ev.pred_type[i]), int(ev.pred_class[i]), float(ev.scores[i])
            if t == TP_TYPE:
                base.setdefault(c, []).append((s, True))
                continue
            j = int(ev.pred_gt[i])
            target = (k, j) if t in (CLS, LOC) and ev.gt_type[j] != TP_TYPE else None
            gcls = int(ev.gt_class[j]) if j >= 0 else c
            if target is not None and (target not in best or best[target][0] < s):
                best[target] = (s, len(errs))
            errs.append((t, c, s, target, gcls))
        missed.extend(int(c) for c in ev.gt_class[ev.gt_type == MISS])

    def fixed_map(fix: int) -> float:
        pts = {c: list(v) for c, v in base.items()}
        gts = dict(n_gt)
        for e, (t, c, s, target, gcls) in enumerate(errs):
            if t != fix:
                pts.setdefault(c, []).append((s, False))
            elif t in (CLS, LOC) and target is not None and best[target][1] == e:
                pts.setdefault(gcls if t == CLS else c, []).append((s, True))
        if fix == MISS:
            for c in missed:
                gts[c] -= 1
        return _map(pts, gts)

    ap = fixed_map(-1)
    dap = {name: max(fixed_map(k) - ap, 0.0) for k, name in enumerate(ERROR_TYPES)}
    counts = {name: 0 for name in ERROR_TYPES}
    per_class: dict[str, dict[str, int]] = {}
    per_image = []
    for ev in evs:
        ci = ev.counts()
        per_image.append(ci)
        for name, v in ci.items():
            counts[name] += v
        for i in np.flatnonzero(ev.pred_type >= 0):
            row = per_class.setdefault(cats[int(ev.pred_class[i])], {n: 0 for n in ERROR_TYPES})
            row[ERROR_TYPES[int(ev.pred_type[i])]] += 1
        for j in np.flatnonzero(ev.gt_type == MISS):
            per_class.setdefault(cats[int(ev.gt_class[j])], {n: 0 for n in ERROR_TYPES})["missed"] += 1
    return TideReport(mode, ap, dap, counts, per_class, per_image)
