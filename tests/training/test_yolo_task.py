"""The YOLO training task: the loss's parts are what the docstring says (coordinates only on the
responsible predictors, the confidence target is the IoU of the decoded box), and a few steps on
one batch drive it down; `segviewer train --model yolo` knows the kind."""

from __future__ import annotations

import numpy as np
import torch

from segviewer.synth.classes import DETECTION_CATEGORIES
from segviewer.training.data import shapes_instance
from segviewer.training.kinds import KINDS
from segviewer.training.tasks import make_task


def _task():  # noqa: ANN202
    torch.manual_seed(0)
    return make_task("yolo", list(DETECTION_CATEGORIES), {"head_width": 32})


def test_yolo_is_a_training_kind() -> None:
    assert KINDS["yolo"] == "instance"
    t = _task()
    assert t.config["trunk"] == "plain" and len(t.config["priors"]) == 5


def test_loss_parts_and_a_few_steps_lower_it() -> None:
    torch.set_num_threads(1)
    task = _task()
    model = task.build()
    batch = [shapes_instance(i) for i in range(2)]
    loss, parts = task.loss(model, batch, "cpu")
    assert set(parts) == {"coord", "obj", "noobj", "cls", "iou"}
    assert np.isclose(float(loss.detach()), sum(v for k, v in parts.items() if k != "iou"), rtol=1e-4)
    assert 0.0 <= parts["iou"] <= 1.0
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    first = float(loss.detach())
    for _ in range(6):
        loss, _ = task.loss(model, batch, "cpu")
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.8 * first


def test_empty_scene_trains_confidence_down_only() -> None:
    task = _task()
    model = task.build()
    s = shapes_instance(0)
    empty = type(s)(s.image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros((0, 256, 256), bool))
    _, parts = task.loss(model, [empty], "cpu")
    assert parts["coord"] == 0.0 and parts["obj"] == 0.0 and parts["cls"] == 0.0 and parts["noobj"] > 0.0
