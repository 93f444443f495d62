"""Semantic metrics against a float64 brute force; COCO AP sanity on exact and missing predictions."""

import numpy as np
import pytest

from segviewer.training.metrics import coco_mask_ap, confusion, per_class_iou, semantic_scores


def test_semantic_scores_match_brute_force() -> None:
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 4, (40, 50))
    gt[0, :5] = 255
    pred = np.where(rng.random((40, 50)) < 0.7, gt, rng.integers(0, 4, (40, 50)))
    pred[gt == 255] = 0
    conf = confusion(gt, pred, 4)
    s = semantic_scores(conf)
    valid = gt != 255
    ious, accs = [], []
    for c in range(4):
        inter = np.sum((gt == c) & (pred == c) & valid)
        union = np.sum(((gt == c) | (pred == c)) & valid)
        ious.append(inter / union)
        accs.append(inter / np.sum(gt == c))
    assert s["miou"] == pytest.approx(np.mean(ious), abs=1e-12)
    assert s["mean_acc"] == pytest.approx(np.mean(accs), abs=1e-12)
    assert s["pixel_acc"] == pytest.approx(np.mean(gt[valid] == pred[valid]), abs=1e-12)
    assert per_class_iou(conf) == pytest.approx(ious)


def test_coco_ap_is_one_for_exact_and_zero_for_none() -> None:
    m = np.zeros((2, 64, 64), bool)
    m[0, 5:30, 5:30] = True
    m[1, 35:60, 30:62] = True
    gts = [(np.array([1, 2]), m)]
    exact = coco_mask_ap(gts, [(np.array([1, 2]), np.array([0.9, 0.8]), m)], 3)
    assert exact["ap"] == pytest.approx(1.0) and exact["ap50"] == pytest.approx(1.0)
    wrong_class = coco_mask_ap(gts, [(np.array([2, 1]), np.array([0.9, 0.8]), m)], 3)
    assert wrong_class["ap"] == pytest.approx(0.0)
    none = coco_mask_ap(gts, [(np.zeros(0, int), np.zeros(0), np.zeros((0, 64, 64), bool))], 3)
    assert none["ap"] == 0.0
