"""The Internals dock's "Mask scoring" tab with the bundled shapes_msrcnn on the sample scene (its
ground truth beside it): one hooked pass gives the layers and the tab; the plotted points are
the pass's two scores against the real mask IoUs, recomputed here from the ground truth and the
bundle's masks, with their Pearson correlations; a click on a detection rings its points."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.analysis.mask_scoring import pearson, real_ious

MODEL = "shapes_msrcnn"
TIMEOUT = 120_000


def test_mask_scoring_tab_plots_both_rules_against_real_iou(qtbot, msr_window) -> None:  # noqa: ANN001
    w, feat, gt_feat = msr_window
    p = feat.panel
    tabs = {k: p.tabs.isTabVisible(i) for i, k in enumerate(p.keys)}
    assert tabs["mask_scoring"] and tabs["roi"] and tabs["mask"]  # beside the two-stage tabs
    p.tabs.setCurrentIndex(p.keys.index("mask_scoring"))
    view = feat.own_views["mask_scoring"]
    qtbot.waitUntil(lambda: view.drawn is not None, timeout=TIMEOUT)
    assert w.passes == [MODEL]  # one pass: the layers and the internals
    it = view.it
    ms = it.mask_scoring
    layer = w.session.results[MODEL]
    np.testing.assert_array_equal(layer.scores, ms.mask_scores)  # the layers show Mask Scoring's scores
    np.testing.assert_array_equal(layer.masks.to_full(), it.masks(0.5).to_full())
    d = view.drawn
    gt = gt_feat.gt.instances
    index = {n: i for i, n in enumerate(it.categories)}
    gl = np.array([index[gt.categories[c]] for c in gt.class_ids])
    want = real_ious(it.detections.groups, layer.masks.to_full(), gl, gt.masks.to_full())
    np.testing.assert_allclose(d["real"], want)
    assert want.max() > 0.8  # the model finds the scene's shapes
    xs, ys = view.tab.points["mask"].getData()
    np.testing.assert_allclose(xs, want)
    np.testing.assert_allclose(ys, ms.box_scores * ms.mask_iou, rtol=1e-6)
    xb, yb = view.tab.points["box"].getData()
    np.testing.assert_allclose(yb, ms.box_scores)
    assert d["pearson"]["mask"] == pytest.approx(pearson(ms.mask_scores, want))
    assert d["pearson"]["box"] == pytest.approx(pearson(ms.box_scores, want))
    assert f"{d['pearson']['mask']:.3f}" in view.tab.counts.text()
    # a click on the centre of a ground-truth object picks the detection there
    full = gt.masks.to_full()
    k = int(np.argmax(full.reshape(len(full), -1).sum(1)))
    ys_, xs_ = np.nonzero(full[k])
    feat.click(float(xs_.mean()), float(ys_.mean()))
    i = view.drawn["selected"]
    assert i is not None and feat.overlays.count("box") == 4
    px, py = view.tab.picked.getData()
    np.testing.assert_allclose(px, [want[i], want[i]])
    np.testing.assert_allclose(py, [ms.box_scores[i], ms.mask_scores[i]], rtol=1e-6)
    assert f"{ms.mask_iou[i]:.3f}" in view.tab.info.text()
