"""The errors of a semantic prediction: every pixel right, wrong, or not counted (no colours here).

A label map has no segments to match, so its errors are per pixel, read off the same pairs of
(true class, predicted class) that fill the confusion matrix (classes matched by NAME, as
:class:`segviewer.analysis.evaluation.SemanticAccumulator` matches them). Status of a pixel:

* ``CORRECT``: the predicted class is the true class (a class other than background);
* ``WRONG``: another class was predicted, or void (the prediction's ignore label) on any
  counted pixel, background included: void is no class, so it is neither missed nor spurious;
* ``MISSED``: background predicted where the ground truth has a class;
* ``SPURIOUS``: a class predicted where the ground truth is background;
* ``BACKGROUND``: background predicted as background;
* ``IGNORED``: the ground truth is void (its ignore label): not counted.

``MISSED`` and ``SPURIOUS`` exist only when the ground truth names a background class
(``__background__`` or ``background``, either spelling on either side: the prediction's takes
the ground truth's, as in the metrics); without one, all confusions are ``WRONG`` and all
agreements ``CORRECT``. So the counts are sums of confusion-matrix cells: ``CORRECT`` the diagonal
(background's cell apart), ``MISSED`` background's column, ``SPURIOUS`` its row but the
``(void)`` cell, ``WRONG`` the rest. :meth:`SemanticErrorMap.info_at` gives the classes under a
point and each one's IoU; a void prediction reads ``(void)``.
The colours are :mod:`segviewer.render.semantic_error`'s; this module never imports render.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from segviewer.analysis.evaluation import BACKGROUND_NAMES, semantic_pred_names
from segviewer.core.errors import SegviewerError
from segviewer.core.results import SemanticMap

__all__ = ["SemanticErrorMap", "semantic_errors", "SEM_STATUS_NAMES", "BACKGROUND_NAMES", "VOID_NAME",
           "BACKGROUND_OK", "CORRECT", "WRONG", "MISSED", "SPURIOUS", "IGNORED"]

BACKGROUND_OK, CORRECT, WRONG, MISSED, SPURIOUS, IGNORED = range(6)
SEM_STATUS_NAMES = ("background", "correct", "wrong class", "missed", "spurious", "ignored")
VOID_NAME = "(void)"  # a void prediction on a counted pixel, as SemanticAccumulator names it


@dataclass(frozen=True, eq=False)
class SemanticErrorMap:
    """Per-pixel status plus what hover needs: each pixel's true and predicted class as indices
    into ``names`` (``-1`` where the ground truth is void; for the prediction, where it is void
    and ``(void)`` is no class because no counted pixel predicts it), and each class's IoU on this
    image (None for a class neither predicted nor present)."""

    status: np.ndarray  # (H, W) uint8 status codes
    gt_index: np.ndarray  # (H, W) int16 index into names, -1 = void
    pred_index: np.ndarray  # (H, W) int16 index into names, -1 = void (on ground-truth void only)
    names: tuple[str, ...]
    iou: tuple[float | None, ...]
    counts: dict[str, int]  # pixels per status name
    confusion: np.ndarray  # (K, K) int64, rows true, columns predicted (counted pixels only)
    background: int | None  # index of the background class in names, if any

    @property
    def image_size(self) -> tuple[int, int]:
        return (int(self.status.shape[0]), int(self.status.shape[1]))

    def nbytes(self) -> int:
        return int(self.status.nbytes + self.gt_index.nbytes + self.pred_index.nbytes + self.confusion.nbytes)

    def info_at(self, x: float, y: float) -> dict[str, Any] | None:
        """``{"status", "true", "predicted", "true_iou", "predicted_iou"}`` at image point (x, y)."""
        h, w = self.image_size
        col, row = int(np.floor(x)), int(np.floor(y))
        if not (0 <= row < h and 0 <= col < w):
            return None
        g, p = int(self.gt_index[row, col]), int(self.pred_index[row, col])
        return {"status": SEM_STATUS_NAMES[int(self.status[row, col])],
                "true": self.names[g] if g >= 0 else None, "predicted": self.names[p] if p >= 0 else VOID_NAME,
                "true_iou": self.iou[g] if g >= 0 else None, "predicted_iou": self.iou[p] if p >= 0 else None}

    def hover_text(self, x: float, y: float) -> str:
        """"Pixel: wrong class, predicted grass (IoU 0.91), true sky (IoU 0.88)" for the dock."""
        info = self.info_at(x, y)
        if info is None:
            return ""

        def cls(name: str | None, iou: float | None) -> str:
            return f"{name} (IoU {iou:.2f})" if iou is not None else f"{name}"

        if info["true"] is None:
            return f"Pixel: ignored (ground truth void), predicted {info['predicted']}"
        if info["status"] in ("correct", "background"):
            return f"Pixel: {info['status']}, {cls(info['true'], info['true_iou'])}"
        return (f"Pixel: {info['status']}, predicted {cls(info['predicted'], info['predicted_iou'])}, "
                f"true {cls(info['true'], info['true_iou'])}")


def semantic_errors(pred: SemanticMap, gt: SemanticMap) -> SemanticErrorMap:
    """The per-pixel error map of ``pred`` against ``gt`` (classes matched by name)."""
    if pred.image_size != gt.image_size:
        raise SegviewerError(f"the prediction is {pred.image_size[::-1]} but the ground truth is "
                             f"{gt.image_size[::-1]}; they must be the same size")
    pred_names = semantic_pred_names(pred.categories, gt.categories)
    names = list(gt.categories) + [n for n in pred_names if n not in gt.categories]
    g = gt.labels.astype(np.int64)
    valid = np.ones(g.shape, bool) if gt.ignore_index is None else g != gt.ignore_index
    p = pred.labels.astype(np.int64)
    pvoid = np.zeros(p.shape, bool) if pred.ignore_index is None else p == pred.ignore_index
    if (pvoid & valid).any():
        names.append(VOID_NAME)
    pos = {n: i for i, n in enumerate(names)}
    k = len(names)
    if k > np.iinfo(np.int16).max:
        raise SegviewerError(f"{k} classes are more than the semantic error layer can index")
    plut = np.array([pos[n] for n in pred_names] + [pos.get(VOID_NAME, -1)], np.int64)
    pi = plut[np.where(pvoid, len(pred_names), np.clip(p, 0, len(pred_names) - 1))]
    gi = np.where(valid, g, -1)
    bg = next((i for i, n in enumerate(gt.categories) if n.lower() in BACKGROUND_NAMES), None)

    status = np.full(g.shape, IGNORED, np.uint8)
    same = valid & (gi == pi)
    diff = valid & ~same
    status[same] = CORRECT
    status[diff] = WRONG
    if bg is not None:
        status[same & (gi == bg)] = BACKGROUND_OK
        status[diff & (pi == bg)] = MISSED
        status[diff & (gi == bg) & ~pvoid] = SPURIOUS
    conf = np.bincount(gi[valid] * k + pi[valid], minlength=k * k).reshape(k, k)
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    iou = tuple(float(inter[c] / union[c]) if union[c] else None for c in range(k))
    hist = np.bincount(status.ravel(), minlength=len(SEM_STATUS_NAMES))
    counts = {name: int(hist[i]) for i, name in enumerate(SEM_STATUS_NAMES)}
    return SemanticErrorMap(status, gi.astype(np.int16), pi.astype(np.int16), tuple(names), iou, counts,
                            conf, bg)
