"""YOLO's grid, in numpy: the one decoding used by the adapter, the training evaluation and the view.

Layout of the raw head output ``(5B + C, S_h, S_w)`` (see :mod:`segviewer.adapters.nets.yolo`):
for prior ``b`` the channels ``5b .. 5b+4`` hold ``t_x, t_y, t_w, t_h, t_o``; the last ``C``
channels hold the cell's class logits. With the cell ``(c_y, c_x)`` (row, column), the stride
``s`` and the prior ``(p_w, p_h)`` in pixels (YOLOv2):

    b_x = (sigma(t_x) + c_x) s,   b_y = (sigma(t_y) + c_y) s,   b_w = p_w e^{t_w},   b_h = p_h e^{t_h}

Each box's confidence is ``sigma(t_o)``, trained towards ``Pr(object) x IoU(pred, truth)`` (v1);
the cell's class distribution ``Pr(class | object) = softmax(class logits)`` is shared by its B
boxes (v1), and the class-specific score of box ``b`` and class ``k`` is
``Pr(k | object) x confidence_b``. The cell responsible for an object is the one holding its
centre; among that cell's priors the one whose shape best overlaps the object's (IoU of the two
boxes centred together) predicts it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segviewer.analysis.nms import NMSTrace, nms_trace

__all__ = ["YoloGrid", "decode", "candidates", "postprocess", "responsible", "kmeans_priors", "shape_iou",
           "sigmoid", "softmax"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, np.float32)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class YoloGrid:
    """One image's decoded grid, in the coordinates of the network's input (``stride`` px cells).

    ``boxes`` ``(S_h, S_w, B, 4)`` xyxy; ``conf`` ``(S_h, S_w, B)``; ``class_prob`` ``(S_h, S_w, C)``;
    ``raw`` ``(S_h, S_w, 5B + C)`` the head's numbers as they came out (for the view's readout).
    """

    raw: np.ndarray
    boxes: np.ndarray
    conf: np.ndarray
    class_prob: np.ndarray
    priors: np.ndarray
    stride: int

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.conf.shape[0]), int(self.conf.shape[1])

    @property
    def num_priors(self) -> int:
        return int(self.conf.shape[2])

    def class_scores(self) -> np.ndarray:
        """``(S_h, S_w, B, C)``: ``Pr(class | object) x confidence`` for every box and class."""
        return self.class_prob[:, :, None, :] * self.conf[:, :, :, None]

    def cell_of(self, x: float, y: float) -> tuple[int, int] | None:
        """The ``(row, col)`` of the cell holding point ``(x, y)`` (network input pixels), if any."""
        r, c = int(np.floor(y / self.stride)), int(np.floor(x / self.stride))
        sh, sw = self.shape
        return (r, c) if 0 <= r < sh and 0 <= c < sw else None


def decode(raw: np.ndarray, priors: np.ndarray, stride: int) -> YoloGrid:
    """Decode ``raw`` ``(5B + C, S_h, S_w)`` (channels first, as the net gives it) into a grid."""
    raw = np.asarray(raw, np.float32)
    pri = np.asarray(priors, np.float32).reshape(-1, 2)
    nb = len(pri)
    ch, sh, sw = raw.shape
    if ch <= 5 * nb:
        raise ValueError(f"a YOLO output with {nb} priors needs more than {5 * nb} channels, got {ch}")
    r = np.ascontiguousarray(raw.transpose(1, 2, 0))  # (S_h, S_w, 5B + C)
    t = r[:, :, : 5 * nb].reshape(sh, sw, nb, 5)
    cy, cx = np.meshgrid(np.arange(sh, dtype=np.float32), np.arange(sw, dtype=np.float32), indexing="ij")
    s = np.float32(stride)
    bx = (sigmoid(t[..., 0]) + cx[:, :, None]) * s
    by = (sigmoid(t[..., 1]) + cy[:, :, None]) * s
    bw = pri[None, None, :, 0] * np.exp(t[..., 2])
    bh = pri[None, None, :, 1] * np.exp(t[..., 3])
    boxes = np.stack([bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2], -1).astype(np.float32)
    return YoloGrid(r, boxes, sigmoid(t[..., 4]), softmax(r[:, :, 5 * nb:], -1), pri, int(stride))


@dataclass(frozen=True, eq=False)
class Candidates:
    """Boxes entering NMS: one per (cell, prior, class) whose class-specific score passes the
    threshold. ``cell`` ``(K, 2)`` row/col, ``prior`` ``(K,)``, ``class_ids`` ``(K,)`` 0-based."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    cell: np.ndarray
    prior: np.ndarray


def candidates(grid: YoloGrid, score_thresh: float = 0.01, max_candidates: int = 1000,
               size: tuple[int, int] | None = None) -> Candidates:
    """Every (box, class) with ``Pr(class | object) x conf >= score_thresh``, best ``max_candidates``
    first; boxes clipped to ``size = (h, w)`` when given."""
    sc = grid.class_scores()
    r, c, b, k = np.nonzero(sc >= np.float32(score_thresh))
    s = sc[r, c, b, k]
    order = np.argsort(-s, kind="stable")[:max_candidates]
    r, c, b, k, s = r[order], c[order], b[order], k[order], s[order]
    boxes = grid.boxes[r, c, b].copy()
    if size is not None:
        h, w = size
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    return Candidates(boxes.astype(np.float32), s.astype(np.float32), k.astype(np.int64),
                      np.stack([r, c], 1).astype(np.int64), b.astype(np.int64))


def postprocess(grid: YoloGrid, score_thresh: float = 0.01, iou_thresh: float = 0.5,
                max_detections: int = 100, size: tuple[int, int] | None = None,
                max_candidates: int = 1000) -> tuple[Candidates, NMSTrace, np.ndarray]:
    """Candidates, the class-wise greedy NMS over them (the trace the view steps through) and the
    kept candidate indices (best first, at most ``max_detections``)."""
    cand = candidates(grid, score_thresh, max_candidates, size)
    trace = nms_trace(cand.boxes, cand.scores, iou_thresh, cand.class_ids)
    return cand, trace, trace.keep[:max_detections]


def shape_iou(wh: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """``(N, K)`` IoU of boxes of sizes ``wh`` ``(N, 2)`` with priors ``(K, 2)``, centres aligned."""
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    p = np.asarray(priors, np.float64).reshape(-1, 2)
    inter = np.minimum(wh[:, None, 0], p[None, :, 0]) * np.minimum(wh[:, None, 1], p[None, :, 1])
    return inter / (wh[:, None, 0] * wh[:, None, 1] + p[None, :, 0] * p[None, :, 1] - inter)


@dataclass(frozen=True, eq=False)
class Assignment:
    """Which predictor answers for each ground-truth box: ``row``, ``col`` (the cell holding its
    centre), ``prior`` (best shape IoU), and the regression targets ``(sigma(t_x), sigma(t_y), t_w,
    t_h)`` that would reproduce the box exactly. Objects whose predictor another object already
    took (same cell and prior) keep the first one (``taken_by`` >= 0, else -1)."""

    row: np.ndarray
    col: np.ndarray
    prior: np.ndarray
    target: np.ndarray  # (N, 4)
    taken_by: np.ndarray


def responsible(boxes: np.ndarray, grid_shape: tuple[int, int], stride: int, priors: np.ndarray) -> Assignment:
    """The responsible cell and prior of every box ``(N, 4)`` xyxy (network input pixels)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    pri = np.asarray(priors, np.float64).reshape(-1, 2)
    sh, sw = grid_shape
    cx, cy = (b[:, 0] + b[:, 2]) / 2 / stride, (b[:, 1] + b[:, 3]) / 2 / stride
    col = np.clip(np.floor(cx), 0, sw - 1).astype(np.int64)
    row = np.clip(np.floor(cy), 0, sh - 1).astype(np.int64)
    wh = np.maximum(b[:, 2:] - b[:, :2], 1e-3)
    prior = shape_iou(wh, pri).argmax(1).astype(np.int64) if len(b) else np.zeros(0, np.int64)
    target = np.stack([cx - col, cy - row, np.log(wh[:, 0] / pri[prior, 0]), np.log(wh[:, 1] / pri[prior, 1])],
                      1) if len(b) else np.zeros((0, 4))
    taken = np.full(len(b), -1, np.int64)
    seen: dict[tuple[int, int, int], int] = {}
    for i in range(len(b)):
        key = (int(row[i]), int(col[i]), int(prior[i]))
        if key in seen:
            taken[i] = seen[key]
        else:
            seen[key] = i
    return Assignment(row, col, prior, target.astype(np.float32), taken)


def kmeans_priors(wh: np.ndarray, k: int = 5, iters: int = 100, seed: int = 0) -> np.ndarray:
    """YOLOv2's dimension clusters: k-means on box sizes with the distance ``1 - IoU(box, centroid)``
    (centres aligned), centroids the mean size of their boxes; sorted by area."""
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    rng = np.random.default_rng(seed)
    cent = wh[rng.choice(len(wh), k, replace=False)]
    for _ in range(iters):
        a = shape_iou(wh, cent).argmax(1)
        new = np.array([wh[a == j].mean(0) if np.any(a == j) else cent[j] for j in range(k)])
        if np.allclose(new, cent):
            break
        cent = new
    return cent[np.argsort(cent.prod(1))]
