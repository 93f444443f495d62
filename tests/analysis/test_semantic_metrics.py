"""Semantic metrics against a float64 reference written as plain loops over pixels."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.analysis.metrics import ConfusionMatrix, confusion_matrix, semantic_metrics
from segviewer.core.errors import BadDatasetError


def _loop_reference(gts, preds, n_cl, ignore):
    n = [[0.0] * n_cl for _ in range(n_cl)]
    for gt, pred in zip(gts, preds):
        for g, p in zip(gt.ravel().tolist(), pred.ravel().tolist()):
            if g == ignore:
                continue
            n[g][p] += 1.0
    t = [sum(n[i]) for i in range(n_cl)]
    col = [sum(n[j][i] for j in range(n_cl)) for i in range(n_cl)]
    present = [i for i in range(n_cl) if t[i] + col[i] > 0]
    in_gt = [i for i in range(n_cl) if t[i] > 0]
    iou = {i: n[i][i] / (t[i] + col[i] - n[i][i]) for i in present}
    return {
        "pixel_accuracy": sum(n[i][i] for i in range(n_cl)) / sum(t),
        "mean_accuracy": sum(n[i][i] / t[i] for i in in_gt) / len(in_gt),
        "mean_iou": sum(iou.values()) / len(present),
        "fw_iou": sum(t[i] * iou[i] for i in present) / sum(t),
        "iou": iou,
    }


@pytest.mark.parametrize("seed", range(4))
def test_matches_the_fcn_formulas_computed_by_loops(seed):
    rng = np.random.default_rng(seed)
    n_cl = 6
    gts, preds = [], []
    for _ in range(3):
        gt = rng.integers(0, n_cl - 1, (17, 23))  # class 5 never in GT ...
        gt[rng.random(gt.shape) < 0.1] = 255
        pred = np.where(rng.random(gt.shape) < 0.6, np.where(gt == 255, 0, gt), rng.integers(0, n_cl, gt.shape))
        pred[pred == 3] = 2  # ... class 3 never predicted
        gt[gt == 4] = 1
        pred[pred == 4] = 1  # class 4 in neither: left out of the means
        gts.append(gt)
        preds.append(pred)
    cm = ConfusionMatrix(n_cl, 255)
    for g, p in zip(gts, preds):
        cm.update(g, p)
    ours = cm.scores()
    ref = _loop_reference(gts, preds, n_cl, 255)
    for k in ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou"):
        assert ours[k] == pytest.approx(ref[k], rel=1e-12), k
    assert ours["per_class"]["4"]["iou"] is None and ours["n_classes"] == 5
    for i, v in ref["iou"].items():
        assert ours["per_class"][str(i)]["iou"] == pytest.approx(v, rel=1e-12)
    assert ours["images"] == 3


def test_perfect_prediction_scores_one_and_names_classes():
    gt = np.array([[0, 1], [2, 255]])
    out = semantic_metrics(gt, np.array([[0, 1], [2, 7]]), 3, 255, ("a", "b", "c"))
    assert out["mean_iou"] == 1.0 and out["pixel_accuracy"] == 1.0 and out["pixels"] == 3
    assert set(out["per_class"]) == {"a", "b", "c"}


def test_confusion_matrix_rows_are_ground_truth():
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([1, 1, 1]), 2, None)
    assert cm.tolist() == [[0, 2], [0, 1]]


def test_bad_labels_and_sizes_raise():
    with pytest.raises(BadDatasetError, match="prediction has label 9"):
        confusion_matrix(np.zeros((2, 2), int), np.full((2, 2), 9), 3)
    with pytest.raises(BadDatasetError, match="prediction is"):
        confusion_matrix(np.zeros((2, 2), int), np.zeros((2, 3), int), 3)
