"""The Internals dock with a one-stage detector (random-init RetinaNet, offline): the dense-heads
tab is listed (and the R-CNN tabs are not), one pass per image, a click draws the anchors of every
level, the NMS stepper's kept set equals ``torchvision.ops.batched_nms``, and the focal-loss
numbers appear once ground truth is there."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtGui import QTextDocument
from torchvision.ops import batched_nms

from segviewer.adapters.base import PredictParams
from segviewer.core.results import Detections
from segviewer.ui.model_host import random_init_factory

MODEL = "retinanet_resnet50_fpn"
TIMEOUT = 240_000


@pytest.fixture
def dense_window(qtbot, tmp_path, internals_window):  # noqa: ANN001, ANN201
    import cv2

    img = np.full((160, 224, 3), 40, np.uint8)
    img[40:120, 60:170] = (200, 60, 60)
    path = tmp_path / "one.png"
    cv2.imwrite(str(path), img[..., ::-1])
    w, feat = internals_window(MODEL, path, make=random_init_factory(1), timeout=TIMEOUT,
                               params=PredictParams(min_score=0.0, extra=(("min_size", 224), ("max_size", 320))))
    yield w, feat


def test_dense_tab_listed_click_and_nms(qtbot, dense_window) -> None:  # noqa: ANN001
    w, feat = dense_window
    it = feat.internals
    assert it is not None and it.kind == "retinanet", feat.message
    p = feat.panel
    tabs = {k: p.tabs.isTabVisible(i) for i, k in enumerate(p.keys)}
    assert tabs["dense"] and not tabs["roi"] and not tabs["rpn"] and not tabs["mask"]
    assert p.tab_name() == "dense"
    assert "anchors x" in feat.dense.tab.counts.text()
    title = feat.dense.tab.focal_title  # rich text: the whole rule shows ("<" was read as a tag)
    assert "RetinaNet assignment" in title.text() and "negative, between ignored" in title.text()
    doc = QTextDocument()
    doc.setHtml(title.text())
    assert doc.toPlainText().endswith("< 0.4 negative, between ignored)"), doc.toPlainText()
    for i in range(len(it.grids)):  # the level's anchor spacing as torchvision uses it, across and down
        sy, sx = it.stride(i)
        text = feat.dense.tab.level.itemText(i)
        assert text.endswith(f"stride {sx:.3g}" if sx == sy else f"stride x {sx:.3g}, y {sy:.3g}"), text
    assert len({it.stride(i) for i in range(len(it.grids))}) == len(it.grids)
    assert any(sx != sy for sy, sx in map(it.stride, range(len(it.grids))))  # this frame's top level
    with qtbot.waitSignal(feat.viewUpdated, timeout=5000):
        feat.click(100.0, 80.0)
    assert feat.message == ""
    assert feat.overlays.count("anchors") == 4 * 9  # 3 scales x 3 ratios on the chosen level
    assert feat.overlays.count("anchors_other") == 4 * 9 * (len(it.grids) - 1)
    # the stepper's kept set at the model's threshold is batched_nms's for that class
    view = feat.dense
    view.tab.go(view.tab.max_steps)
    trace = view.trace
    c = it.candidates
    ref = batched_nms(torch.from_numpy(c.boxes), torch.from_numpy(c.scores), torch.from_numpy(c.groups),
                      it.nms_thresh).numpy()
    cls = int(view.tab.nms_class.currentData())
    np.testing.assert_array_equal(np.sort(trace.ids[trace.keep]), np.sort(ref[c.groups[ref] == cls]))
    # focal loss with ground truth: the assignment map and the easy-negative shares
    gt = Detections(it.image_size, np.array([[60, 40, 170, 120]], np.float32), np.ones(1, np.float32),
                    np.zeros(1, np.int32), ("person",))
    w.session.set_derived("ground truth", gt)
    view.tab.show_what.setCurrentIndex(2)
    assert "preparing" in view.tab.focal_info.text()  # a background job, not the UI thread
    qtbot.waitUntil(lambda: "CE" in view.tab.focal_info.text(), timeout=60_000)
    text = view.tab.focal_info.text()
    assert "CE" in text and "FL" in text and "positive" in text, text
    assert feat.overlays.heat.isVisible()
    # the layers' result and the dense internals came from ONE pass of the model
    assert w.passes == [MODEL]
    assert MODEL in w.session.results


def test_dense_tab_keeps_nothing_of_a_model_no_longer_selected(qtbot, dense_window) -> None:  # noqa: ANN001
    """Unticking the one-stage detector (nothing left to look inside): the tab lost its bundle's
    counts and a click no longer drew the old model's anchors on the image."""
    w, feat = dense_window
    view = feat.dense
    feat.click(100.0, 80.0)
    assert view.tab.counts.text() and feat.overlays.count("anchors") > 0
    w.picker.set_checked(MODEL, False)
    qtbot.waitUntil(lambda: feat.model_id is None, timeout=10_000)
    assert feat.view is None and view.it is None
    assert view.tab.counts.text() == "" and view.tab.level.count() == 0
    feat.click(100.0, 80.0)
    assert feat.overlays.count("anchors") == 0 and feat.overlays.count("anchors_other") == 0
