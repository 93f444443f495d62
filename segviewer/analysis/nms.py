"""Greedy non-maximum suppression, step by step, so the internals view can replay it.

Why not just call torchvision: the view shows *which* box each kept box suppressed and at what
IoU, one step at a time. The kept set must still be exactly ``torchvision.ops.batched_nms``'s,
so the decisions follow its CPU kernel: boxes sorted by score (stable, descending), IoU in
float32 as ``inter / (area_i + area_j - inter)`` with areas ``(x1 - x0) * (y1 - y0)`` (no +1),
a box suppressed when ``IoU > threshold`` (strictly). ``batched_nms`` separates classes either by
shifting each class's boxes by ``class * (max + 1)`` (up to 1000 boxes on CPU) or by running NMS
per class; the shift changes float32 rounding, so we shift exactly when it does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.core.geometry import box_iou

__all__ = ["NMSStep", "NMSTrace", "nms_trace", "pairwise_iou"]

_F32 = np.float32
_COORDINATE_TRICK_MAX_NUMEL = 4000  # torchvision.ops.boxes.batched_nms, CPU
_MATRIX_MAX = 2048  # groups up to this size get all pairwise IoUs at once (16 MB of float32)

pairwise_iou = box_iou  # one definition: segviewer.core.geometry


@dataclass(frozen=True)
class NMSStep:
    """One greedy step: ``kept`` survives and removes ``suppressed`` (their IoUs with it)."""

    index: int  # step number, 0-based, in score order
    kept: int  # index into the input boxes
    class_id: int
    score: float
    suppressed: np.ndarray  # (S,) int64 input indices
    ious: np.ndarray  # (S,) float32 IoU with the kept box (the value the kernel compared)


@dataclass(frozen=True, eq=False)
class NMSTrace:
    """The whole greedy run; arrays are indexed by input box.

    ``keep`` lists kept indices by descending score (``batched_nms``'s order);
    ``suppressed_by[i]`` is the kept box that removed box ``i`` (-1 if ``i`` was kept) and
    ``suppress_iou[i]`` the IoU it was removed at (NaN for kept boxes).
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    iou_threshold: float
    keep: np.ndarray
    suppressed_by: np.ndarray
    suppress_iou: np.ndarray
    ids: np.ndarray | None = None  # the caller's index of each box (e.g. rows of a larger set)

    def __len__(self) -> int:
        """Number of steps (= kept boxes)."""
        return len(self.keep)

    def step(self, i: int) -> NMSStep:
        """Step ``i``: the i-th kept box (by score) and the boxes it suppressed."""
        if not 0 <= i < len(self.keep):
            raise SegviewerError(f"NMS step {i} does not exist; this run has {len(self.keep)} steps.")
        k = int(self.keep[i])
        sup = np.flatnonzero(self.suppressed_by == k)
        sup = sup[np.argsort(-self.scores[sup], kind="stable")]
        return NMSStep(i, k, int(self.class_ids[k]), float(self.scores[k]), sup,
                       self.suppress_iou[sup].astype(np.float32))

    def steps(self) -> list[NMSStep]:
        return [self.step(i) for i in range(len(self.keep))]

    def state_after(self, n_steps: int) -> np.ndarray:
        """``(N,)`` int8 state after ``n_steps`` steps: 1 kept, -1 suppressed, 0 still pending."""
        state = np.zeros(len(self.boxes), np.int8)
        kept = self.keep[: max(n_steps, 0)]
        state[kept] = 1
        state[np.isin(self.suppressed_by, kept)] = -1
        return state

    def kept_mask(self) -> np.ndarray:
        m = np.zeros(len(self.boxes), bool)
        m[self.keep] = True
        return m


def _greedy(boxes: np.ndarray, scores: np.ndarray, thr: float,
            idx: np.ndarray, sup_by: np.ndarray, sup_iou: np.ndarray) -> list[int]:
    """Kernel-faithful greedy NMS over the boxes ``idx`` (float32 boxes already shifted if needed)."""
    order = idx[np.argsort(-scores[idx].astype(np.float64), kind="stable")]
    b = boxes[order]
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = ((x1 - x0) * (y1 - y0)).astype(_F32)
    if len(order) <= _MATRIX_MAX:
        return _greedy_matrix(order, x0, y0, x1, y1, areas, thr, sup_by, sup_iou)
    alive = np.ones(len(order), bool)
    kept: list[int] = []
    for i in range(len(order)):
        if not alive[i]:
            continue
        kept.append(int(order[i]))
        rest = np.flatnonzero(alive[i + 1:]) + i + 1
        if rest.size == 0:
            continue
        w = np.maximum(_F32(0), np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]))
        h = np.maximum(_F32(0), np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]))
        inter = (w * h).astype(_F32)
        with np.errstate(divide="ignore", invalid="ignore"):
            ovr = (inter / (areas[i] + areas[rest] - inter)).astype(_F32)
        hit = ovr.astype(np.float64) > thr  # float32 IoU against the double threshold; NaN never hits
        gone = rest[hit]
        alive[gone] = False
        sup_by[order[gone]] = order[i]
        sup_iou[order[gone]] = ovr[hit]
    return kept


def _greedy_matrix(order: np.ndarray, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray,
                   areas: np.ndarray, thr: float, sup_by: np.ndarray, sup_iou: np.ndarray) -> list[int]:
    """The same greedy pass with all pairwise IoUs computed at once (each pair with the kernel's
    float32 operations, so every decision is identical); the Python loop then only ORs rows."""
    w = np.maximum(_F32(0), np.minimum(x1[:, None], x1[None, :]) - np.maximum(x0[:, None], x0[None, :]))
    h = np.maximum(_F32(0), np.minimum(y1[:, None], y1[None, :]) - np.maximum(y0[:, None], y0[None, :]))
    inter = (w * h).astype(_F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        ovr = (inter / (areas[:, None] + areas[None, :] - inter)).astype(_F32)
    hit = np.triu(ovr.astype(np.float64) > thr, 1)  # only lower-scored boxes can be suppressed
    removed = np.zeros(len(order), bool)
    kept: list[int] = []
    for i in range(len(order)):
        if removed[i]:
            continue
        kept.append(int(order[i]))
        new = hit[i] & ~removed
        if new.any():
            removed |= new
            sup_by[order[new]] = order[i]
            sup_iou[order[new]] = ovr[i, new]
    return kept


def nms_trace(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
              class_ids: np.ndarray | None = None, ids: np.ndarray | None = None,
              batch: tuple[int, float] | None = None) -> NMSTrace:
    """Run greedy NMS per class (``class_ids``; one class when None) and record every step.

    ``ids`` (optional, one per box) is carried along so a trace of a subset can name the rows
    of the full set it came from. To replay one class of a larger ``batched_nms`` call bit for
    bit, pass ``batch = (number of boxes in that call, its largest coordinate)``: the float32
    class offsets then equal the full call's.
    """
    b = np.asarray(boxes, _F32).reshape(-1, 4)
    s = np.asarray(scores, _F32).reshape(-1)
    n = len(b)
    c = np.zeros(n, np.int64) if class_ids is None else np.asarray(class_ids, np.int64).reshape(-1)
    if len(s) != n or len(c) != n:
        raise SegviewerError(f"NMS needs one score and one class per box; got {n} boxes, {len(s)} scores, "
                             f"{len(c)} classes.")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(s))):
        raise SegviewerError("NMS boxes or scores contain NaN or infinity.")
    if not np.isfinite(iou_threshold):
        raise SegviewerError(f"The NMS IoU threshold must be a number; got {iou_threshold}.")
    sup_by = np.full(n, -1, np.int64)
    sup_iou = np.full(n, np.nan, np.float32)
    kept: list[int] = []
    numel, max_coord = (b.size, b.max() if n else 0.0) if batch is None else (4 * int(batch[0]), batch[1])
    if n and numel <= _COORDINATE_TRICK_MAX_NUMEL:
        offsets = c.astype(_F32) * (_F32(max_coord) + _F32(1))
        shifted = (b + offsets[:, None]).astype(_F32)
        kept = _greedy(shifted, s, float(iou_threshold), np.arange(n), sup_by, sup_iou)
    elif n:
        for cls in np.unique(c):
            kept += _greedy(b, s, float(iou_threshold), np.flatnonzero(c == cls), sup_by, sup_iou)
    keep = np.asarray(kept, np.int64)
    keep = keep[np.argsort(-s[keep].astype(np.float64), kind="stable")]
    if ids is not None:
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(ids) != n:
            raise SegviewerError(f"NMS got {n} boxes but {len(ids)} ids.")
    return NMSTrace(b, s, c, float(iou_threshold), keep, sup_by, sup_iou, ids)
