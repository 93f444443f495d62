"""The Internals dock with the bundled YOLO (shapes_yolo): the "YOLO grid" tab is the one listed,
one pass per image gives the layers' boxes and the grid, a click on a cell draws its B boxes and
priors and reads out numbers equal to the bundle's decoding, ground truth marks the responsible
cells, and the NMS stepper's kept set equals torchvision's batched_nms for that class."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms

from segviewer.adapters.base import PredictParams
from segviewer.core.results import Detections

MODEL = "shapes_yolo"
TIMEOUT = 120_000


@pytest.fixture
def yolo_window(qtbot, tmp_path, internals_window):  # noqa: ANN001, ANN201
    import cv2

    from segviewer.training.data import VAL_SEED, shapes_instance

    smp = shapes_instance(VAL_SEED + 600_000)
    path = tmp_path / "scene.png"
    cv2.imwrite(str(path), smp.image[..., ::-1])
    w, feat = internals_window(MODEL, path, params=PredictParams(min_score=0.05))
    yield w, feat, smp


def test_yolo_tab_click_responsible_and_nms(qtbot, yolo_window) -> None:  # noqa: ANN001
    w, feat, smp = yolo_window
    p = feat.panel
    tabs = {k: p.tabs.isTabVisible(i) for i, k in enumerate(p.keys)}
    assert tabs["yolo"] and not tabs["roi"] and not tabs["rpn"] and not tabs["dense"]
    assert p.tab_name() == "yolo"
    view = feat.view
    assert view is not None and view.key == "yolo"
    it = view.it
    sh, sw = it.grid.shape
    nb = it.grid.num_priors
    assert "16 x 16 grid" in view.tab.counts.text()
    assert feat.overlays.count("cells") == sh + 1 + sw + 1  # the grid lines
    # a click on the centre of the first ground-truth object: its cell, B boxes, priors, readout
    b = smp.boxes[0]
    x, y = float(b[0] + b[2]) / 2, float(b[1] + b[3]) / 2
    with qtbot.waitSignal(feat.viewUpdated, timeout=5000):
        feat.click(x, y)
    assert feat.message == ""
    r, c = int(y // 16), int(x // 16)
    assert view.cell == (r, c)
    assert feat.overlays.count("anchors") == 4 * (nb - 1) and feat.overlays.count("box") == 4
    assert feat.overlays.count("anchors_other") == 4 * nb  # the priors, centred on the cell
    text = view.tab.cell.text()
    confs = [float(v) for v in re.findall(r"confidence σ\(t_o\) ([0-9.]+)", text)]
    np.testing.assert_allclose(confs, it.grid.conf[r, c], atol=6e-4)
    drawn = feat.overlays.segments["box"][0]  # the top edge of the most confident box
    best = it.to_image(it.grid.boxes[r, c, int(np.argmax(it.grid.conf[r, c]))])[0]
    np.testing.assert_allclose(drawn.ravel(), [best[0], best[1], best[2], best[1]], atol=1e-3)
    # ground truth: the responsible cells, and which object the clicked cell answers for
    names = ("circle", "square", "triangle", "star", "ring")
    gt = Detections(it.image_size, smp.boxes, np.ones(len(smp.boxes), np.float32),
                    (smp.labels - 1).astype(np.int32), names)
    with qtbot.waitSignal(feat.viewUpdated, timeout=5000):
        w.session.set_derived("ground truth", gt)
        feat.update_view()
    assert feat.overlays.count("hover_cells") == 4 * len(smp.boxes)
    assert "Responsible for object 0" in view.tab.cell.text()
    # the stepper's kept set at the model's threshold is batched_nms's for that class
    view.tab.go(view.tab.max_steps)
    trace, cand = view.trace, it.candidates
    ref = batched_nms(torch.from_numpy(cand.boxes), torch.from_numpy(cand.scores),
                      torch.from_numpy(cand.class_ids), it.nms_thresh).numpy()
    k = int(view.tab.nms_class.currentData())
    np.testing.assert_array_equal(np.sort(trace.ids[trace.keep]), np.sort(ref[cand.class_ids[ref] == k]))
    assert feat.overlays.count("kept") == 4 * len(trace)
    # the layers' boxes and the grid came from ONE pass of the model
    assert w.passes == [MODEL]
    assert len(w.session.results[MODEL].boxes) == len(it.detections.boxes)
