"""The RPN's NMS, one FPN level at a time, replayed by the stepper: for every level and threshold
the kept set equals ``torchvision.ops.batched_nms`` on the RPN's candidates with the level as the
group (what ``RegionProposalNetwork.filter_proposals`` calls), in both of torchvision's code paths
(coordinate offsets for small calls, a loop per group for large ones)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.ops import batched_nms

from segviewer.adapters.internals import capture_internals
from segviewer.analysis.roi_align import NothingHereError

THRESHOLDS = (None, 0.3, 0.5, 0.9)


def _image(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    img[h // 5: h // 2, w // 4: w // 2] = (200, 40, 40)
    return img


@pytest.fixture(scope="module", params=[("small", 150), ("large", 1000)], ids=lambda p: p[0])
def internals(request: pytest.FixtureRequest):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=4, min_size=160, max_size=224).eval()
    m.rpn._pre_nms_top_n["testing"] = request.param[1]
    return capture_internals(m, _image(150, 200), score_thresh=0.0)


def test_rpn_nms_per_level_equals_batched_nms(internals) -> None:
    c = internals.rpn_candidates
    boxes, scores, levels = (torch.from_numpy(a) for a in (c.boxes, c.scores, c.groups))
    assert len(np.unique(c.groups)) >= 3
    for thr in THRESHOLDS:
        t = internals.rpn_nms_thresh if thr is None else thr
        ref = set(batched_nms(boxes, scores, levels, t).numpy().tolist())
        for level in np.unique(c.groups):
            trace = internals.rpn_nms(int(level), thr)
            ours = set(trace.ids[trace.keep].tolist())
            rows = set(np.flatnonzero(c.groups == level).tolist())
            assert ours == ref & rows, (level, t)
            assert trace.iou_threshold == pytest.approx(t)
            # every suppressed box was removed by a kept box of its own level, above the threshold
            sup = np.flatnonzero(trace.suppressed_by >= 0)
            assert (trace.suppress_iou[sup] > t).all()
    # at the model's threshold the union over levels is the RPN's own NMS output
    kept = set()
    for level in np.unique(c.groups):
        tr = internals.rpn_nms(int(level))
        kept |= set(c.source[tr.ids[tr.keep]].tolist())
    assert kept == set(internals.rpn_kept.source.tolist())


def test_a_level_without_boxes_is_a_message(internals) -> None:
    with pytest.raises(NothingHereError, match="level 99"):
        internals.rpn_nms(99)
