"""Segment matching shared by panoptic quality and the error layer.

Two id maps (ground truth and prediction) are compared through ONE joint histogram: each pixel's
pair of compact segment indices ``gt_index * (P + 2) + pred_index`` is counted with
``np.bincount``. Every quantity COCO panoptic's ``pq_compute`` needs (intersections, areas, the
predicted pixels on ground-truth void) is a row, column or cell of that small matrix, so no Python
loop ever touches pixels.

Index convention of the matrix (``PairCounts.matrix``, shape ``(G + 2, P + 2)``):
row/column 0 is void (segment id 0), 1..G / 1..P the listed segments in their given order, and the
last row/column collects ids that the segment list does not name (an error for files; see
:func:`index_ids`).

Matching follows panopticapi: a pair matches when both segments have the same category, the
ground-truth segment is not crowd, and ``IoU > 0.5`` where the union leaves out the predicted
pixels that fall on ground-truth void. Because segments do not overlap such a match is unique.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segviewer.core.errors import BadDatasetError
from segviewer.core.results import Detections, PanopticMap

__all__ = [
    "IdIndexer",
    "PairCounts",
    "SegmentMatches",
    "InstanceMatches",
    "pair_counts",
    "check_segment_ids",
    "check_listed_ids",
    "index_values",
    "match_pairs",
    "match_segments",
    "match_instances",
    "mask_iou_matrix",
]

_LUT_BITS = 24  # ids decoded from RGB PNGs are R + 256 G + 256^2 B < 2**24


class IdIndexer:
    """Maps arbitrary segment ids to compact indices with a reusable lookup table.

    A 2**24-entry table (16 MiB of ``uint8``, allocated on first use) turns the per-pixel id lookup
    into one gather, 10x faster than ``np.searchsorted``. Only the entries of the current image
    are set and they are reset afterwards, so one indexer serves many images. Not thread-safe:
    give each thread its own.
    """

    OTHER8 = 255  # the uint8 index of ids not listed

    def __init__(self) -> None:
        self._lut8: np.ndarray | None = None
        self._lut16: np.ndarray | None = None

    def index(self, id_map: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, int]:
        """``(indices, other)``: per pixel 0 for id 0 (void), ``i + 1`` for ``ids[i]`` and
        ``other`` for any id not listed. ``indices`` is ``uint8`` with ``other = 255`` when fewer
        than 254 ids are listed (the fast path), else ``intp`` with ``other = len(ids) + 1``.
        ``ids`` must be unique and non-zero (checked by the caller)."""
        ids = np.asarray(ids, np.int64).ravel()
        k = len(ids)
        fits = k == 0 or (ids.min() > 0 and ids.max() < (1 << _LUT_BITS))
        top = (1 << _LUT_BITS) - 1
        if fits and k < 0xFFFE and id_map.dtype.kind in "ui" and id_map.size:
            # Unsigned maps need no range scan: mode="clip" sends ids beyond the table to its last
            # entry, which holds the fill value unless that very id is listed.
            if id_map.dtype.kind == "u" and not (k and ids.max() == top):
                lo, hi = 0, 0
            else:
                lo, hi = int(id_map.min()), int(id_map.max())
            if lo >= 0 and hi <= top:
                small = k < self.OTHER8 - 1
                if small and self._lut8 is None:
                    self._lut8 = np.full(1 << _LUT_BITS, self.OTHER8, np.uint8)
                if not small and self._lut16 is None:
                    self._lut16 = np.full(1 << _LUT_BITS, 0xFFFF, np.uint16)
                lut = self._lut8 if small else self._lut16
                assert lut is not None
                fill = lut[1]  # every entry but the current image's holds the fill value
                lut[0] = 0
                lut[ids] = np.arange(1, k + 1)
                try:
                    idx = np.take(lut, id_map, mode="clip")
                finally:
                    lut[ids] = fill
                    lut[0] = fill
                if small:
                    return idx, self.OTHER8
                idx = idx.astype(np.intp)
                idx[idx == 0xFFFF] = k + 1
                return idx, k + 1
        # General path (ids beyond 24 bits or an int map with negatives): sort-based lookup.
        order = np.argsort(ids)
        sorted_ids = ids[order]
        flat = id_map.astype(np.int64, copy=False)
        pos = np.searchsorted(sorted_ids, flat)
        pos_c = np.minimum(pos, max(k - 1, 0))
        found = (sorted_ids[pos_c] == flat) if k else np.zeros(flat.shape, bool)
        idx = np.where(found, order[pos_c] + 1, k + 1).astype(np.intp)
        idx[flat == 0] = 0
        return idx, k + 1


@dataclass(frozen=True, eq=False)
class PairCounts:
    """The joint pixel histogram of two segmentations (see the module docstring for indexing)."""

    gt_ids: np.ndarray  # (G,) int64
    pred_ids: np.ndarray  # (P,) int64
    matrix: np.ndarray  # (G + 2, P + 2) int64

    @property
    def gt_area(self) -> np.ndarray:
        """Pixels of each listed ground-truth segment, ``(G,)``."""
        return self.matrix[1:-1].sum(axis=1)

    @property
    def pred_area(self) -> np.ndarray:
        """Pixels of each listed predicted segment, ``(P,)``."""
        return self.matrix[:, 1:-1].sum(axis=0)

    @property
    def intersections(self) -> np.ndarray:
        return self.matrix[1:-1, 1:-1]

    @property
    def pred_on_void(self) -> np.ndarray:
        """Predicted pixels on ground-truth void, ``(P,)``."""
        return self.matrix[0, 1:-1]


def check_segment_ids(ids: np.ndarray, where: str, side: str) -> np.ndarray:
    """Segment ids of one side of a pair, refused when one is void (0) or listed twice."""
    ids = np.asarray(ids, np.int64).ravel()
    if (ids == 0).any():
        raise BadDatasetError(f"{where}: {side} segment id 0 is reserved for void")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise BadDatasetError(f"{where}: {side} segment id {int(uniq[counts > 1][0])} is listed twice")
    return ids


def index_values(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Compact indices of a few values (0 void, ``i + 1`` for ``ids[i]``, ``len(ids) + 1`` other)."""
    k = len(ids)
    if k == 0:
        return np.where(values == 0, 0, 1).astype(np.intp)
    order = np.argsort(ids)
    srt = ids[order]
    v = values.astype(np.int64, copy=False)
    pos = np.minimum(np.searchsorted(srt, v), k - 1)
    idx = np.where(srt[pos] == v, order[pos] + 1, k + 1).astype(np.intp)
    idx[v == 0] = 0
    return idx


def _count_runs(gt_map: np.ndarray, gt_ids: np.ndarray, pred_map: np.ndarray,
                pred_ids: np.ndarray) -> np.ndarray | None:
    """The pair histogram from runs of equal (gt, pred) pixels along rows, or None if too noisy.

    Segment maps are piecewise constant, so a 640x480 pair has a few thousand runs: two vector
    compares find them, and only the run starts are looked up and counted (weighted by length).
    No per-pixel gather, no lookup table; exact (float64 weights hold integers below 2**53).
    """
    gf, pf = gt_map.reshape(-1), pred_map.reshape(-1)
    n = gf.size
    if n == 0:
        return None
    if gt_map.ndim == 2 and gt_map.shape[1] > 1 and gt_map.dtype == np.int32 and pred_map.dtype == np.int32:
        # OpenCV compares and scans (several times faster than numpy's flatnonzero); every row's
        # first pixel starts a run, so each row's changes are found within it.
        import cv2

        h, w = gt_map.shape
        ne = cv2.compare(gt_map[:, 1:], gt_map[:, :-1], cv2.CMP_NE)
        cv2.bitwise_or(ne, cv2.compare(pred_map[:, 1:], pred_map[:, :-1], cv2.CMP_NE), dst=ne)
        nz = cv2.findNonZero(ne)
        rows = np.arange(h, dtype=np.int64) * w
        if nz is None:
            starts = rows
        else:
            xy = nz.reshape(-1, 2).astype(np.int64)
            change = xy[:, 1] * w + xy[:, 0] + 1  # sorted, never a row start
            starts = np.insert(change, np.searchsorted(change, rows), rows)
    else:
        change = np.empty(n, bool)
        change[0] = True
        np.not_equal(gf[1:], gf[:-1], out=change[1:])
        change[1:] |= pf[1:] != pf[:-1]
        starts = np.flatnonzero(change)
    if len(starts) > n // 8:  # noise-like maps: per-pixel counting is cheaper
        return None
    lengths = np.diff(starts, append=n)
    g, p = len(gt_ids), len(pred_ids)
    key = index_values(gf[starts], gt_ids) * (p + 2) + index_values(pf[starts], pred_ids)
    counts = np.bincount(key, weights=lengths, minlength=(g + 2) * (p + 2))
    return counts.astype(np.int64).reshape(g + 2, p + 2)


def _count_pixels(gt_map: np.ndarray, gt_ids: np.ndarray, pred_map: np.ndarray, pred_ids: np.ndarray,
                  ix: IdIndexer) -> np.ndarray:
    """The pair histogram by a per-pixel table lookup and a 2-D histogram (any map)."""
    g, p = len(gt_ids), len(pred_ids)
    gi, g_other = ix.index(gt_map, gt_ids)
    pi, p_other = ix.index(pred_map, pred_ids)
    if gi.dtype == np.uint8 and pi.dtype == np.uint8 and gi.size < (1 << 24):
        # Both index maps are bytes: OpenCV's 2-D histogram counts them in one pass (float32 counts
        # are exact below 2**24 pixels). Row/column 255 collects the ids not listed.
        import cv2

        gi, pi = np.ascontiguousarray(gi), np.ascontiguousarray(pi)
        # Bins for the listed ids only (fewer bins, faster); unlisted ids (255) fall outside the
        # range, which the pixel total reveals, and only then is the full 256 x 256 counted.
        hist = cv2.calcHist([gi, pi], [0, 1], None, [g + 1, p + 1], [0, g + 1, 0, p + 1])
        matrix = np.zeros((g + 2, p + 2), np.int64)
        matrix[:-1, :-1] = hist
        if int(matrix.sum()) != gi.size:
            full = cv2.calcHist([gi, pi], [0, 1], None, [256, 256], [0, 256, 0, 256])
            matrix = full[np.ix_(np.r_[0:g + 1, g_other], np.r_[0:p + 1, p_other])].astype(np.int64)
    else:
        gi = gi.astype(np.intp)
        pi = pi.astype(np.intp)
        if g_other != g + 1:
            gi[gi == g_other] = g + 1
        if p_other != p + 1:
            pi[pi == p_other] = p + 1
        gi *= p + 2
        gi += pi
        matrix = np.bincount(gi.ravel(), minlength=(g + 2) * (p + 2)).reshape(g + 2, p + 2)
    return matrix


def pair_counts(gt_map: np.ndarray, gt_ids: np.ndarray, pred_map: np.ndarray, pred_ids: np.ndarray,
                *, where: str = "image", indexer: IdIndexer | None = None,
                strict: bool = True) -> PairCounts:
    """Count pixels per (ground-truth segment, predicted segment) pair.

    Runs of equal pixel pairs are counted when the maps are piecewise constant (always, for real
    segmentations); noise-like maps fall back to a per-pixel lookup table and a 2-D histogram.

    With ``strict`` (files) an id present in a map but not listed, or listed but absent from its
    map, raises :class:`BadDatasetError` naming ``where`` and the segment, as ``pq_compute`` does.
    """
    if gt_map.shape != pred_map.shape:
        raise BadDatasetError(f"{where}: prediction is {pred_map.shape[1]}x{pred_map.shape[0]} but the "
                              f"ground truth is {gt_map.shape[1]}x{gt_map.shape[0]}")
    gt_ids = check_segment_ids(gt_ids, where, "ground-truth")
    pred_ids = check_segment_ids(pred_ids, where, "predicted")
    matrix = _count_runs(gt_map, gt_ids, pred_map, pred_ids)
    if matrix is None:
        matrix = _count_pixels(gt_map, gt_ids, pred_map, pred_ids, indexer or IdIndexer())
    if strict:
        check_listed_ids(matrix, gt_ids, pred_ids, gt_map, pred_map, where)
    return PairCounts(gt_ids, pred_ids, matrix)


def check_listed_ids(matrix: np.ndarray, gt_ids: np.ndarray, pred_ids: np.ndarray,
                     gt_values: np.ndarray, pred_values: np.ndarray, where: str) -> None:
    """Refuse a pair whose maps and segment lists disagree, as ``pq_compute`` does for files.

    ``matrix`` is the pair histogram (see the module docstring): a count in its last row/column
    means an id in the PNG that the JSON does not list; an empty listed row/column, a listed id
    absent from the PNG. ``*_values`` hold every id of each map (the map itself, or the ids of
    its runs); they are scanned only to name the unlisted id in the message. One check, so PQ
    from decoded maps and from runs refuse the same files with the same words.
    """
    for side, ids, counts, values in (("predicted", pred_ids, matrix.sum(axis=0), pred_values),
                                      ("ground-truth", gt_ids, matrix.sum(axis=1), gt_values)):
        if counts[-1]:
            extra = np.setdiff1d(np.unique(values), np.concatenate([[0], ids]))
            raise BadDatasetError(f"{where}: {side} segment id {int(extra[0])} is in the PNG but not "
                                  f"in the JSON segments_info")
        absent = np.flatnonzero(counts[1:-1] == 0)
        if absent.size:
            raise BadDatasetError(f"{where}: {side} segment id {int(ids[absent[0]])} is in the JSON "
                                  f"segments_info but not in the PNG")


def match_pairs(pc: PairCounts, gt_cat: np.ndarray, gt_crowd: np.ndarray,
                pred_cat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Matched pairs as ``(gt_index, pred_index, iou)`` arrays (0-based into the id lists).

    Same category, ground truth not crowd, IoU > 0.5 with the union excluding predicted pixels on
    ground-truth void, exactly as panopticapi's ``pq_compute_single_core``.
    """
    inter = pc.intersections
    if inter.size == 0:
        e = np.zeros(0, np.intp)
        return e, e, np.zeros(0)
    gi, pj = np.nonzero(inter)
    ok = (np.asarray(gt_cat)[gi] == np.asarray(pred_cat)[pj]) & ~np.asarray(gt_crowd, bool)[gi]
    gi, pj = gi[ok], pj[ok]
    it = inter[gi, pj]
    union = pc.pred_area[pj] + pc.gt_area[gi] - it - pc.pred_on_void[pj]
    iou = it / union
    keep = iou > 0.5
    return gi[keep], pj[keep], iou[keep]


@dataclass(frozen=True, eq=False)
class SegmentMatches:
    """Which predicted segment matched which ground-truth one, for hover and the error layer.

    ``ignored_pred`` are unmatched predictions that are more than half on ground-truth void or
    crowd (not false positives, as in ``pq_compute``).
    """

    pred_to_gt: dict[int, tuple[int, float]]  # pred id -> (gt id, IoU)
    gt_to_pred: dict[int, tuple[int, float]]
    false_positives: tuple[int, ...]
    false_negatives: tuple[int, ...]
    ignored_pred: tuple[int, ...]
    best_iou_pred: dict[int, float]  # pred id -> best IoU with any same-category gt segment

    def iou(self, pred_id: int) -> float | None:
        """Matched IoU of a predicted segment, or None when it is unmatched."""
        m = self.pred_to_gt.get(int(pred_id))
        return None if m is None else m[1]


def _seg_arrays(pm: PanopticMap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.array([s.id for s in pm.segments], np.int64)
    cats = np.array([s.category_id for s in pm.segments], np.int64)
    crowd = np.array([s.iscrowd for s in pm.segments], bool)
    return ids, cats, crowd


def match_segments(pred: PanopticMap, gt: PanopticMap) -> SegmentMatches:
    """Match two in-memory panoptic maps of one image (category indices must mean the same)."""
    if tuple(pred.categories) != tuple(gt.categories):
        raise BadDatasetError("prediction and ground truth use different category lists")
    gids, gcat, gcrowd = _seg_arrays(gt)
    pids, pcat, _ = _seg_arrays(pred)
    pc = pair_counts(gt.segment_ids, gids, pred.segment_ids, pids, where="image", strict=False)
    gi, pj, iou = match_pairs(pc, gcat, gcrowd, pcat)
    p2g = {int(pids[j]): (int(gids[i]), float(v)) for i, j, v in zip(gi, pj, iou)}
    g2p = {int(gids[i]): (int(pids[j]), float(v)) for i, j, v in zip(gi, pj, iou)}
    matched_g = np.zeros(len(gids), bool)
    matched_g[gi] = True
    matched_p = np.zeros(len(pids), bool)
    matched_p[pj] = True
    fn = tuple(int(gids[i]) for i in np.flatnonzero(~matched_g & ~gcrowd & (pc.gt_area > 0)))
    ign = _ignored_pred(pc, gcat, gcrowd, pcat) & ~matched_p
    fp = tuple(int(pids[j]) for j in np.flatnonzero(~matched_p & ~ign & (pc.pred_area > 0)))
    # Best same-category IoU (for hover on unmatched segments).
    best: dict[int, float] = {}
    inter = pc.intersections
    if inter.size:
        union = pc.pred_area[None, :] + pc.gt_area[:, None] - inter - pc.pred_on_void[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            ious = np.where((gcat[:, None] == pcat[None, :]) & (union > 0), inter / np.maximum(union, 1), 0.0)
        for j, v in enumerate(ious.max(axis=0)):
            best[int(pids[j])] = float(v)
    return SegmentMatches(p2g, g2p, fp, fn, tuple(int(pids[j]) for j in np.flatnonzero(ign)), best)


def _ignored_pred(pc: PairCounts, gcat: np.ndarray, gcrowd: np.ndarray, pcat: np.ndarray) -> np.ndarray:
    """Predictions more than half on void or on their category's crowd region (``(P,)`` bool).

    Like ``pq_compute``, only ONE crowd segment per category counts: the last one listed.
    """
    covered = pc.pred_on_void.astype(np.int64).copy()
    crowd_idx = {int(c): i for i, c in enumerate(gcat) if gcrowd[i]}
    for j, c in enumerate(pcat):
        i = crowd_idx.get(int(c))
        if i is not None:
            covered[j] += pc.intersections[i, j]
    area = pc.pred_area
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(area > 0, covered / np.maximum(area, 1) > 0.5, False)


@dataclass(frozen=True, eq=False)
class InstanceMatches:
    """Greedy one-to-one matching of predicted instance masks to ground truth (by descending score).

    ``pred_iou[i]`` is the IoU of prediction i with its matched ground truth (0 if unmatched);
    ``pred_match[i]`` the matched ground-truth index or -1; ``gt_match[j]`` likewise.
    """

    pred_match: np.ndarray
    pred_iou: np.ndarray
    gt_match: np.ndarray

    @property
    def true_positives(self) -> np.ndarray:
        return np.flatnonzero(self.pred_match >= 0)

    @property
    def false_positives(self) -> np.ndarray:
        return np.flatnonzero(self.pred_match < 0)

    @property
    def false_negatives(self) -> np.ndarray:
        return np.flatnonzero(self.gt_match < 0)


def mask_iou_matrix(pred: Detections, gt: Detections) -> np.ndarray:
    """``(N_pred, N_gt)`` mask IoU from the compact crops (only overlapping crops are compared)."""
    if pred.masks is None or gt.masks is None:
        raise BadDatasetError("instance matching needs masks on both prediction and ground truth")
    pa, ga = pred.masks.areas(), gt.masks.areas()
    out = np.zeros((len(pred), len(gt)))
    for i, (pc, (px, py)) in enumerate(zip(pred.masks.crops, pred.masks.offsets)):
        if not pc.size:
            continue
        for j, (gc, (gx, gy)) in enumerate(zip(gt.masks.crops, gt.masks.offsets)):
            if not gc.size:
                continue
            x0, y0 = max(px, gx), max(py, gy)
            x1 = min(px + pc.shape[1], gx + gc.shape[1])
            y1 = min(py + pc.shape[0], gy + gc.shape[0])
            if x1 <= x0 or y1 <= y0:
                continue
            a = pc[y0 - py:y1 - py, x0 - px:x1 - px]
            b = gc[y0 - gy:y1 - gy, x0 - gx:x1 - gx]
            inter = int(np.count_nonzero(a & b))
            if inter:
                out[i, j] = inter / (pa[i] + ga[j] - inter)
    return out


def match_instances(pred: Detections, gt: Detections, iou_thresh: float = 0.5,
                    same_class: bool = True) -> InstanceMatches:
    """Match instance masks greedily by descending score at ``IoU > iou_thresh``."""
    ious = mask_iou_matrix(pred, gt)
    if same_class and len(pred) and len(gt):
        pn, gn = pred.names, gt.names
        same = np.array([[a == b for b in gn] for a in pn], bool)
        ious = np.where(same, ious, 0.0)
    pm = np.full(len(pred), -1, np.int64)
    piou = np.zeros(len(pred))
    gm = np.full(len(gt), -1, np.int64)
    for i in np.argsort(-pred.scores, kind="stable"):
        if not len(gt):
            break
        cand = np.where(gm < 0, ious[i], -1.0)
        j = int(np.argmax(cand))
        if cand[j] > iou_thresh:
            pm[i], piou[i], gm[j] = j, cand[j], i
    return InstanceMatches(pm, piou, gm)
