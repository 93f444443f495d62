"""The instance error map carries each false positive's TIDE type, and hover names it."""

from __future__ import annotations

import numpy as np

from segviewer.analysis.error_map import FN, FP, TP, instance_errors
from segviewer.analysis.evaluation import ImageEval, hover_text
from segviewer.core.results import Detections, MaskSet


def _dets(rects: list[tuple[int, int, int, int]], cls: list[int], scores: list[float]) -> Detections:
    m = np.zeros((len(rects), 60, 60), bool)
    for k, (x0, y0, x1, y1) in enumerate(rects):
        m[k, y0:y1, x0:x1] = True
    return Detections((60, 60), np.array(rects, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                      np.array(cls, np.int32), ("a", "b"), masks=MaskSet.from_full(m))


def test_error_types_on_the_instance_error_map_and_in_hover() -> None:
    gt = _dets([(0, 0, 10, 10), (20, 0, 30, 10), (40, 40, 50, 50)], [0, 0, 1], [1, 1, 1])
    # TP on gt 1; class confusion on gt 2; far-away background blob; gt 3 missed
    pred = _dets([(0, 0, 10, 10), (20, 0, 30, 10), (40, 0, 50, 8)], [0, 1, 0], [0.9, 0.8, 0.7])
    em = instance_errors(pred, gt)
    assert em.pred_type == {2: "classification", 3: "background"}
    assert em.gt_type == {3: "missed"}
    assert em.error_counts["classification"] == 1 and em.error_counts["missed"] == 1
    assert em.status[5, 5] == TP and em.status[45, 45] == FN and em.status[4, 45] == FP
    ev = ImageEval(errors=em, error_kind="instances", pred_names={1: "a", 2: "b", 3: "a"},
                   gt_names={1: "a", 2: "a", 3: "b"})
    assert "background error" in hover_text(ev, 45, 4)
    assert "classification error" in hover_text(ev, 25, 5)
    assert "missed" in hover_text(ev, 45, 45)
