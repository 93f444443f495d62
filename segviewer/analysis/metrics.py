"""Semantic segmentation metrics from ONE confusion matrix, as the FCN paper defines them.

With ``n_ij`` the pixels of ground-truth class i predicted as j, ``t_i = sum_j n_ij``:

* pixel accuracy  = sum_i n_ii / sum_i t_i
* mean accuracy   = (1/n_cl) sum_i n_ii / t_i
* mean IoU        = (1/n_cl) sum_i n_ii / (t_i + sum_j n_ji - n_ii)
* frequency-weighted IoU = (1 / sum_k t_k) sum_i t_i n_ii / (t_i + sum_j n_ji - n_ii)

Convention for the means (the FCN paper leaves it open): a class absent from BOTH ground truth and
prediction has no defined IoU and is left out of mean IoU; mean accuracy averages over the classes
present in the ground truth (``t_i > 0``), since accuracy is undefined without ground-truth pixels.
A class predicted but absent from the ground truth counts in mean IoU with IoU 0. Pixels whose
ground truth is the ignore label are not counted at all; a prediction outside ``[0, C)`` on a
counted pixel is an error.

The matrix is built with a single ``np.bincount(gt * C + pred)``; accumulate it over a data set
with :class:`ConfusionMatrix` and read every number from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segviewer.core.errors import BadDatasetError

__all__ = ["confusion_matrix", "ConfusionMatrix", "scores_from_confusion", "semantic_metrics"]


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int,
                     ignore_index: int | None = 255, where: str = "image") -> np.ndarray:
    """``(C, C)`` int64 counts, rows ground truth, columns prediction."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise BadDatasetError(f"{where}: prediction is {pred.shape[::-1]} but the ground truth is {gt.shape[::-1]}")
    g = gt.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    if ignore_index is not None:
        keep = g != ignore_index
        if not keep.all():
            g, p = g[keep], p[keep]
    if g.size:
        for arr, side in ((g, "ground truth"), (p, "prediction")):
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= num_classes:
                bad = lo if lo < 0 else hi
                raise BadDatasetError(f"{where}: {side} has label {bad}, outside 0..{num_classes - 1}"
                                      + ("" if ignore_index is None else f" and not the ignore label {ignore_index}"))
    return np.bincount(g * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores_from_confusion(cm: np.ndarray, class_names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Every semantic number from one confusion matrix, as a plain dict (JSON-ready)."""
    cm = np.asarray(cm, np.float64)
    n = cm.shape[0]
    tp = np.diag(cm)
    t = cm.sum(axis=1)  # ground-truth pixels per class
    pcount = cm.sum(axis=0)  # predicted pixels per class
    union = t + pcount - tp
    present = union > 0
    total = t.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(present, tp / union, np.nan)
        acc = np.where(t > 0, tp / t, np.nan)
    names = class_names or tuple(str(i) for i in range(n))
    out: dict[str, Any] = {
        "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
        "mean_accuracy": float(np.nanmean(acc)) if (t > 0).any() else 0.0,
        "mean_iou": float(np.nanmean(iou)) if present.any() else 0.0,
        "fw_iou": float((t[present] * iou[present]).sum() / total) if total else 0.0,
        "n_classes": int(present.sum()),
        "pixels": int(total),
        "per_class": {
            names[i]: {"iou": None if np.isnan(iou[i]) else float(iou[i]),
                       "accuracy": None if np.isnan(acc[i]) else float(acc[i]),
                       "gt_pixels": int(t[i]), "pred_pixels": int(pcount[i])}
            for i in range(n)
        },
    }
    return out


class ConfusionMatrix:
    """A running confusion matrix over many images (``update`` then ``scores``)."""

    def __init__(self, num_classes: int, ignore_index: int | None = 255,
                 class_names: tuple[str, ...] | None = None) -> None:
        if num_classes < 1:
            raise BadDatasetError(f"the number of classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = class_names
        self.matrix = np.zeros((num_classes, num_classes), np.int64)
        self.images = 0

    def update(self, gt: np.ndarray, pred: np.ndarray, where: str = "image") -> None:
        self.matrix += confusion_matrix(gt, pred, self.num_classes, self.ignore_index, where)
        self.images += 1

    def scores(self) -> dict[str, Any]:
        out = scores_from_confusion(self.matrix, self.class_names)
        out["images"] = self.images
        return out


def semantic_metrics(gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int | None = 255,
                     class_names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """One image's numbers as a plain dict (for the metrics panel)."""
    return scores_from_confusion(confusion_matrix(gt, pred, num_classes, ignore_index), class_names)
