"""YOLO's grid decoding (numpy) against the papers' formulas written as a plain loop, the torch
twin the loss trains through, the responsible cell / prior, k-means priors, and the class-wise
NMS against torchvision's batched_nms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms

from segviewer.analysis import yolo as Y

PRIORS = np.array([[20.0, 30.0], [60.0, 50.0], [120.0, 110.0]], np.float32)
C = 4


def _raw(seed: int = 0, sh: int = 5, sw: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1.5, (5 * len(PRIORS) + C, sh, sw)).astype(np.float32)


def test_decode_equals_the_formula_in_a_plain_loop() -> None:
    raw = _raw()
    g = Y.decode(raw, PRIORS, 16)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    nb = len(PRIORS)
    for r in range(raw.shape[1]):
        for c in range(raw.shape[2]):
            logits = raw[5 * nb:, r, c].astype(np.float64)
            e = np.exp(logits - logits.max())
            np.testing.assert_allclose(g.class_prob[r, c], e / e.sum(), rtol=1e-5)
            for b in range(nb):
                tx, ty, tw, th, to = (float(v) for v in raw[5 * b:5 * b + 5, r, c])
                bx, by = (sig(tx) + c) * 16, (sig(ty) + r) * 16  # b = sigma(t) + c, in cells, times the stride
                bw, bh = PRIORS[b, 0] * math.exp(tw), PRIORS[b, 1] * math.exp(th)  # b = p e^t
                np.testing.assert_allclose(g.boxes[r, c, b], [bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2],
                                           rtol=1e-5, atol=1e-3)
                assert g.conf[r, c, b] == pytest.approx(sig(to), rel=1e-5)
                # class-specific score = Pr(class | object) x confidence (v1)
                np.testing.assert_allclose(g.class_scores()[r, c, b], g.class_prob[r, c] * sig(to), rtol=1e-5)


def test_decode_equals_the_training_twin() -> None:
    from segviewer.training.yolo_task import decode_torch

    raw = _raw(1)
    boxes, t = decode_torch(torch.from_numpy(raw)[None], torch.from_numpy(PRIORS), 16)
    g = Y.decode(raw, PRIORS, 16)
    np.testing.assert_allclose(boxes[0].numpy(), g.boxes, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(torch.sigmoid(t[0, ..., 4]).numpy(), g.conf, rtol=1e-5)


def test_responsible_cell_and_prior_reproduce_the_box() -> None:
    boxes = np.array([[10, 12, 40, 50], [70, 20, 190, 125], [75, 25, 100, 60], [71, 21, 189, 124]], np.float32)
    a = Y.responsible(boxes, (8, 16), 16, PRIORS)
    for i, b in enumerate(boxes):
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        assert (a.row[i], a.col[i]) == (int(cy // 16), int(cx // 16))  # the cell holding the centre
        wh = b[2:] - b[:2]
        ious = [min(wh[0], p[0]) * min(wh[1], p[1]) / (wh[0] * wh[1] + p[0] * p[1] - min(wh[0], p[0]) * min(wh[1], p[1]))
                for p in PRIORS]
        assert a.prior[i] == int(np.argmax(ious))
        # targets that decode back to the box exactly
        sx, sy, tw, th = (float(v) for v in a.target[i])
        p = PRIORS[a.prior[i]]
        bx, by = (sx + a.col[i]) * 16, (sy + a.row[i]) * 16
        np.testing.assert_allclose([bx - p[0] * math.exp(tw) / 2, by - p[1] * math.exp(th) / 2], b[:2], atol=1e-3)
    # the last box has the second's cell and prior: it is the second's predictor's, not trained twice
    assert a.taken_by.tolist() == [-1, -1, -1, 1]


def test_kmeans_priors_find_the_clusters() -> None:
    rng = np.random.default_rng(0)
    wh = np.concatenate([rng.normal(m, 1.0, (200, 2)) for m in ((20, 40), (80, 80), (150, 60))])
    got = Y.kmeans_priors(wh, 3)
    np.testing.assert_allclose(got, [[20, 40], [80, 80], [150, 60]], atol=1.0)
    assert np.all(np.diff(got.prod(1)) > 0)  # sorted by area


def test_postprocess_keeps_what_batched_nms_keeps() -> None:
    g = Y.decode(_raw(2, 8, 8), PRIORS, 16)
    cand, trace, keep = Y.postprocess(g, score_thresh=0.02, iou_thresh=0.5, max_detections=1000, size=(128, 128))
    sc = g.class_scores()
    assert len(cand.scores) == int((sc >= np.float32(0.02)).sum())
    np.testing.assert_array_equal(cand.scores, sc[cand.cell[:, 0], cand.cell[:, 1], cand.prior, cand.class_ids])
    ref = batched_nms(torch.from_numpy(cand.boxes), torch.from_numpy(cand.scores),
                      torch.from_numpy(cand.class_ids), 0.5).numpy()
    np.testing.assert_array_equal(keep, ref)
    assert len(trace) == len(ref)
