"""The bundled YOLO (shapes_yolo): its card matches the checkpoint, it reloads, one forward pass
gives both the detections and the grid, the grid decodes by the papers' formulas, the kept set is
torchvision's batched_nms, and it still detects on fresh unseen scenes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms

from segviewer.adapters.base import PredictParams
from segviewer.adapters.one_pass import capture_kinds, predict_with_internals
from segviewer.adapters.registry import get_card
from segviewer.training.data import VAL_SEED, shapes_instance
from tests.adapters.bundled import checked_card, counted_adapter

MODEL = "shapes_yolo"


@pytest.fixture(scope="module")
def yolo():  # noqa: ANN201
    yield from counted_adapter(MODEL)


def test_card_matches_the_checkpoint() -> None:
    card = checked_card(MODEL)
    assert card.extra["training"]["command"].startswith("segviewer train --model yolo")
    assert card.metrics["box_ap50"] >= 0.90


def test_checkpoint_reloads_exactly(yolo) -> None:  # noqa: ANN001
    from segviewer.adapters.nets import checkpoint

    ck = checkpoint.load(Path(get_card(MODEL).extra["checkpoint_path"]))
    assert ck["model"] == "yolo"
    own = yolo.module.state_dict()
    assert set(own) == set(ck["state_dict"])
    for k, v in ck["state_dict"].items():
        assert torch.equal(own[k], v.to(own[k].dtype)), k


def test_one_pass_gives_the_detections_and_the_grid(yolo) -> None:  # noqa: ANN001
    assert capture_kinds(yolo) == ("yolo_grid",)
    img = shapes_instance(VAL_SEED + 700_000).image
    yolo.passes.clear()
    det, it = predict_with_internals(yolo, img, PredictParams())
    assert len(yolo.passes) == 1
    ref = yolo.predict(img, PredictParams())
    assert len(yolo.passes) == 2
    np.testing.assert_array_equal(det.boxes, ref.boxes)
    np.testing.assert_array_equal(det.scores, ref.scores)
    np.testing.assert_array_equal(det.class_ids, ref.class_ids)
    assert it.kinds == ("yolo_grid",) and it.grid.shape == (16, 16)


def test_grid_decodes_by_the_formula_and_nms_is_batched_nms(yolo) -> None:  # noqa: ANN001
    import cv2

    img = cv2.resize(shapes_instance(VAL_SEED + 700_001).image, (640, 480))
    det, it = yolo.predict_grid(img, PredictParams(min_score=0.01))
    g = it.grid
    assert it.model_size == (256, 341) and g.shape == (16, 22)  # the cells over the real image only
    nb = g.num_priors
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    sx, sy = it.scale
    r, c = np.unravel_index(int(np.argmax(it.max_conf_map())), g.shape)  # the most confident cell
    cell = it.cell(int(r), int(c))
    for b in range(nb):
        tx, ty, tw, th, to = (float(v) for v in g.raw[r, c, 5 * b:5 * b + 5])
        bx, by = (sig(tx) + c) * 16, (sig(ty) + r) * 16
        bw, bh = g.priors[b, 0] * math.exp(tw), g.priors[b, 1] * math.exp(th)
        np.testing.assert_allclose(cell.boxes[b], [(bx - bw / 2) * sx, (by - bh / 2) * sy, (bx + bw / 2) * sx,
                                                   (by + bh / 2) * sy], rtol=1e-4, atol=1e-2)
        assert cell.conf[b] == pytest.approx(sig(to), rel=1e-5)
    logits = g.raw[r, c, 5 * nb:].astype(np.float64)
    np.testing.assert_allclose(cell.class_prob, np.exp(logits) / np.exp(logits).sum(), rtol=1e-5)
    # the kept set is torchvision's class-wise NMS of the same candidates
    cand = it.candidates
    keep = batched_nms(torch.from_numpy(cand.boxes), torch.from_numpy(cand.scores),
                       torch.from_numpy(cand.class_ids), 0.5).numpy()[:100]
    np.testing.assert_array_equal(it.keep, keep)
    np.testing.assert_allclose(det.boxes, np.clip(cand.boxes[keep] * np.array([sx, sy, sx, sy]),
                                                  0, [640, 480, 640, 480]), rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(det.class_ids, cand.class_ids[keep] + 1)
    # one class replayed alone at the model's threshold keeps exactly that class's share
    k = int(cand.class_ids[keep[0]])
    tr = it.nms(k)
    assert sorted(tr.ids[tr.keep].tolist()) == sorted(int(i) for i in keep if cand.class_ids[i] == k)


def test_still_detects_on_fresh_unseen_scenes(yolo) -> None:  # noqa: ANN001
    from segviewer.training.centernet_task import evaluate_adapter_boxes

    m = evaluate_adapter_boxes(yolo, [VAL_SEED + 500_000 + i for i in range(20)])
    assert m["box_ap50"] >= get_card(MODEL).metrics["box_ap50"] - 0.08
