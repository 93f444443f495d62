"""Pair counting on every code path against a brute-force count, and segment matching."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from segviewer.analysis.matching import IdIndexer, _count_pixels, _count_runs, match_segments, pair_counts
from segviewer.core.errors import BadDatasetError
from segviewer.core.results import PanopticMap, PanopticSegment


def _brute(gt, gids, pred, pids):
    gpos = {int(v): i + 1 for i, v in enumerate(gids)} | {0: 0}
    ppos = {int(v): i + 1 for i, v in enumerate(pids)} | {0: 0}
    m = np.zeros((len(gids) + 2, len(pids) + 2), np.int64)
    for (a, b), n in Counter(zip(gt.ravel().tolist(), pred.ravel().tolist())).items():
        m[gpos.get(a, len(gids) + 1), ppos.get(b, len(pids) + 1)] += n
    return m


@pytest.mark.parametrize("n_ids,dtype,id_range", [
    (20, np.uint32, (1, 1 << 24)),  # uint8 LUT + 2-D histogram
    (300, np.uint32, (1, 1 << 24)),  # uint16 LUT + bincount
    (20, np.int32, (1, 1 << 24)),  # signed map: range scanned
    (20, np.int64, (1 << 30, 1 << 40)),  # ids beyond 24 bits: sort-based path
])
def test_pair_counts_equals_brute_force(n_ids, dtype, id_range):
    rng = np.random.default_rng(n_ids)
    ids = rng.permutation(np.unique(rng.integers(*id_range, 3 * n_ids))[:n_ids])
    gids, pids = ids[: n_ids // 2 + 1], ids[n_ids // 3:]
    gt = rng.choice(np.r_[0, gids], (37, 41)).astype(dtype)
    pred = rng.choice(np.r_[0, pids], (37, 41)).astype(dtype)
    ix = IdIndexer()
    pc = pair_counts(gt, gids, pred, pids, indexer=ix, strict=False)
    assert np.array_equal(pc.matrix, _brute(gt, gids, pred, pids))
    # the reusable table is clean afterwards: a second image gives its own counts
    pc2 = pair_counts(pred, pids, gt, gids, indexer=ix, strict=False)
    assert np.array_equal(pc2.matrix, _brute(pred, pids, gt, gids))


@pytest.mark.parametrize("seed", range(3))
def test_run_counting_and_pixel_counting_agree_on_blocky_maps(seed):
    rng = np.random.default_rng(seed)
    gids = rng.permutation(np.unique(rng.integers(1, 1 << 24, 40))[:12])
    pids = rng.permutation(np.unique(rng.integers(1, 1 << 24, 40))[:9])
    gt = np.kron(rng.choice(np.r_[0, gids], (6, 8)), np.ones((7, 9), np.int64)).astype(np.uint32)
    pred = np.kron(rng.choice(np.r_[0, pids, 99], (6, 8)), np.ones((7, 9), np.int64)).astype(np.uint32)
    ref = _brute(gt, gids, pred, pids)
    runs = _count_runs(gt, gids, pred, pids)
    assert runs is not None and np.array_equal(runs, ref)  # 99 is unlisted: counted in the last column
    assert np.array_equal(_count_pixels(gt, gids, pred, pids, IdIndexer()), ref)
    assert _count_runs(rng.integers(0, 5, (20, 20)), gids, rng.integers(0, 5, (20, 20)), pids) is None


def test_unlisted_ids_are_counted_or_refused():
    gt = np.array([[1, 2], [3, 0]], np.uint32)
    pred = np.array([[1, 1], [(1 << 24) - 1, 7]], np.uint32)
    pc = pair_counts(gt, [1, 2], pred, [1], strict=False)
    assert np.array_equal(pc.matrix, _brute(gt, [1, 2], pred, [1]))
    with pytest.raises(BadDatasetError, match="predicted segment id 16777215 is in the PNG but not in the JSON"):
        pair_counts(gt, [1, 2, 3], pred, [1, 7])
    # the last table entry listed: the clip shortcut must not be used
    pc = pair_counts(gt, [1, 2, 3], pred, [1, 7, (1 << 24) - 1])
    assert np.array_equal(pc.matrix, _brute(gt, [1, 2, 3], pred, [1, 7, (1 << 24) - 1]))


def test_match_segments_reports_iou_fp_fn():
    gt_ids = np.zeros((10, 10), np.int32)
    gt_ids[:, :5] = 1
    gt_ids[:, 5:] = 2
    pred_ids = np.zeros_like(gt_ids)
    pred_ids[:, :6] = 10  # IoU 50/60 with gt 1
    pred_ids[:, 6:] = 20  # category differs from gt 2: FP, and gt 2 is FN
    cats = ("a", "b")
    gt = PanopticMap(gt_ids, (PanopticSegment(1, 0, False, 50), PanopticSegment(2, 0, False, 50)), cats)
    pr = PanopticMap(pred_ids, (PanopticSegment(10, 0, False, 60), PanopticSegment(20, 1, False, 40)), cats)
    m = match_segments(pr, gt)
    assert m.iou(10) == pytest.approx(50 / 60) and m.iou(20) is None
    assert m.false_positives == (20,) and m.false_negatives == (2,)
    assert m.gt_to_pred[1][0] == 10 and m.best_iou_pred[20] == 0.0
