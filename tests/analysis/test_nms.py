"""The NMS stepper's kept set must equal torchvision.ops.batched_nms at every threshold."""

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms, box_iou, nms

from segviewer.analysis.nms import nms_trace, pairwise_iou
from segviewer.core.errors import SegviewerError

torch.set_num_threads(1)
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 21), 3).tolist() + [0.3333, 0.7, 0.05, 0.999]


def _random_boxes(rng: np.random.Generator, n: int, span: float = 200.0, integer: bool = False):
    xy = rng.uniform(0, span, (n, 2))
    wh = rng.uniform(1, span / 3, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1)
    if integer:
        boxes = np.round(boxes)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    return boxes.astype(np.float32)


@pytest.mark.parametrize("n,n_classes,integer", [(60, 1, False), (300, 4, False), (200, 3, True),
                                                 (1200, 5, False), (8, 2, True)])
def test_kept_set_equals_batched_nms(n: int, n_classes: int, integer: bool) -> None:
    rng = np.random.default_rng(n + n_classes)
    for trial in range(3):
        boxes = _random_boxes(rng, n, integer=integer)
        scores = rng.random(n).astype(np.float32)
        if trial == 2:  # many ties in score
            scores = np.round(scores * 5).astype(np.float32) / 5
        classes = rng.integers(0, n_classes, n)
        tb, ts, tc = torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes)
        for thr in THRESHOLDS:
            ref = batched_nms(tb, ts, tc, thr).numpy()
            trace = nms_trace(boxes, scores, thr, classes)
            assert set(trace.keep.tolist()) == set(ref.tolist()), (n, trial, thr)
            np.testing.assert_array_equal(np.sort(scores[trace.keep])[::-1], scores[ref])


def test_steps_explain_every_suppression() -> None:
    rng = np.random.default_rng(3)
    boxes, scores = _random_boxes(rng, 150), rng.random(150).astype(np.float32)
    classes = rng.integers(0, 3, 150)
    trace = nms_trace(boxes, scores, 0.5, classes)
    iou = pairwise_iou(boxes, boxes)
    seen = set(trace.keep.tolist())
    for st in trace.steps():
        assert st.kept in trace.keep and st.class_id == classes[st.kept]
        for j, v in zip(st.suppressed, st.ious):
            assert classes[j] == classes[st.kept] and scores[j] <= scores[st.kept]
            assert v > 0.5 and abs(v - iou[st.kept, j]) < 1e-4
        seen |= set(st.suppressed.tolist())
    assert seen == set(range(150))  # every box is kept or suppressed by someone
    # kept boxes of one class never overlap above the threshold
    for cls in range(3):
        k = trace.keep[classes[trace.keep] == cls]
        sub = iou[np.ix_(k, k)]
        assert np.all(sub[~np.eye(len(k), dtype=bool)] <= 0.5 + 1e-6)


def test_state_after_steps() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [21, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    trace = nms_trace(boxes, scores, 0.5)
    np.testing.assert_array_equal(trace.keep, [3, 0])
    np.testing.assert_array_equal(trace.state_after(0), [0, 0, 0, 0])
    np.testing.assert_array_equal(trace.state_after(1), [0, 0, -1, 1])
    np.testing.assert_array_equal(trace.state_after(2), [1, -1, -1, 1])
    first = trace.step(0)
    assert first.kept == 3 and first.suppressed.tolist() == [2]
    assert first.ious[0] == pytest.approx(0.9)
    with pytest.raises(SegviewerError, match="step 5"):
        trace.step(5)


def test_single_class_equals_nms_and_pairwise_iou_equals_box_iou() -> None:
    rng = np.random.default_rng(11)
    boxes, scores = _random_boxes(rng, 100), rng.random(100).astype(np.float32)
    for thr in (0.1, 0.4, 0.7):
        ref = nms(torch.from_numpy(boxes), torch.from_numpy(scores), thr).numpy()
        np.testing.assert_array_equal(nms_trace(boxes, scores, thr).keep, ref)
    np.testing.assert_allclose(pairwise_iou(boxes, boxes[:10]),
                               box_iou(torch.from_numpy(boxes).double(), torch.from_numpy(boxes[:10]).double()).numpy(),
                               atol=1e-12)


def test_empty_and_bad_input() -> None:
    assert len(nms_trace(np.zeros((0, 4)), np.zeros(0), 0.5)) == 0
    with pytest.raises(SegviewerError, match="one score"):
        nms_trace(np.zeros((3, 4)), np.zeros(2), 0.5)
    with pytest.raises(SegviewerError, match="NaN"):
        nms_trace(np.array([[0, 0, np.nan, 1]]), np.ones(1), 0.5)


def test_row_by_row_path_equals_matrix_path(monkeypatch) -> None:
    """Groups larger than the pairwise-matrix limit take the row-by-row loop; same decisions."""
    import segviewer.analysis.nms as nms_mod

    rng = np.random.default_rng(21)
    boxes, scores = _random_boxes(rng, 400), rng.random(400).astype(np.float32)
    classes = rng.integers(0, 2, 400)
    for thr in (0.2, 0.5, 0.7):
        fast = nms_trace(boxes, scores, thr, classes)
        monkeypatch.setattr(nms_mod, "_MATRIX_MAX", 0)
        slow = nms_trace(boxes, scores, thr, classes)
        monkeypatch.undo()
        ref = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), thr).numpy()
        assert set(slow.keep.tolist()) == set(ref.tolist())
        np.testing.assert_array_equal(fast.keep, slow.keep)
        np.testing.assert_array_equal(fast.suppressed_by, slow.suppressed_by)
        np.testing.assert_array_equal(fast.suppress_iou, slow.suppress_iou)


def test_one_class_of_a_batch_replays_exactly() -> None:
    rng = np.random.default_rng(8)
    for n in (300, 1500):  # coordinate-trick call and per-class call
        boxes, scores = _random_boxes(rng, n), rng.random(n).astype(np.float32)
        classes = rng.integers(0, 4, n)
        ref = set(batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), 0.5)
                  .numpy().tolist())
        for cls in range(4):
            rows = np.flatnonzero(classes == cls)
            t = nms_trace(boxes[rows], scores[rows], 0.5, classes[rows], rows, (n, float(boxes.max())))
            assert set(t.ids[t.keep].tolist()) == ref & set(rows.tolist())
    with pytest.raises(SegviewerError, match="ids"):
        nms_trace(boxes[:3], scores[:3], 0.5, ids=np.arange(2))
