"""YOLACT's training task: it starts from the bundled YOLO's weights, a step moves only the mask
branch (the frozen detector's weights and batch-norm statistics stay), the mask loss falls on one
batch, positives follow YOLACT's IoU rule plus YOLO's responsible predictor, and the mask target is
the area share of each prototype cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from segviewer.adapters.registry import models_dir
from segviewer.analysis import yolo as Y
from segviewer.synth.classes import DETECTION_CATEGORIES
from segviewer.training.data import shapes_instance
from segviewer.training.kinds import KINDS
from segviewer.training.tasks import make_task
from segviewer.training.yolact_task import load_detector, mask_targets, positives

YOLO_PT = models_dir() / "shapes_yolo.pt"


def _task(**cfg):  # noqa: ANN003, ANN202
    torch.manual_seed(0)
    return make_task("yolact", list(DETECTION_CATEGORIES), {"detector": str(YOLO_PT), "proto_width": 16, **cfg})


def test_yolact_is_a_training_kind() -> None:
    assert KINDS["yolact"] == "instance"
    assert _task().config["num_prototypes"] == 16


def test_a_step_moves_only_the_mask_branch() -> None:
    torch.set_num_threads(1)
    task = _task()
    model = task.build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 2e-3)
    batch = [shapes_instance(i) for i in range(2)]
    model.train()
    first = None
    for _ in range(5):
        loss, parts = task.loss(model, batch, "cpu")
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert parts["positives"] > 0 and float(loss.detach()) < first
    after = model.state_dict()
    det = [k for k in after if not k.startswith(("proto_", "coef."))]
    assert all(torch.equal(before[k], after[k]) for k in det)  # weights and BN statistics
    assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith("proto_"))


def test_load_detector_refuses_another_kind(tmp_path: Path) -> None:
    other = models_dir() / "shapes_centernet.pt"
    model = _task(detector="").build()
    with pytest.raises(ValueError, match="not a YOLO detector"):
        load_detector(model, other)


def test_mask_targets_are_area_shares() -> None:
    m = np.zeros((1, 8, 8), bool)
    m[0, 0:2, 0:3] = True
    t = mask_targets(m, 4)
    np.testing.assert_allclose(t[0], [[6 / 16, 0], [0, 0]])


def test_positives_hold_the_responsible_predictor_and_the_overlapping_ones() -> None:
    s = shapes_instance(3)
    pri = np.asarray(_task().config["priors"], np.float32)
    a = Y.responsible(s.boxes, (16, 16), 16, pri)
    gt = torch.from_numpy(s.boxes)
    boxes = torch.zeros(16, 16, len(pri), 4)  # no predicted box overlaps anything
    r, c, b, o = positives(boxes, gt, a)
    first = a.taken_by < 0
    assert sorted(zip(r.tolist(), c.tolist(), b.tolist())) == sorted(zip(a.row[first], a.col[first], a.prior[first]))
    boxes[0, 0, 0] = gt[0]  # one predictor sits exactly on object 0
    r, c, b, o = positives(boxes, gt, a)
    hit = [(i, oo) for i, (rr, cc, bb, oo) in enumerate(zip(r.tolist(), c.tolist(), b.tolist(), o.tolist()))
           if (rr, cc, bb) == (0, 0, 0)]
    assert hit and hit[0][1] == 0
