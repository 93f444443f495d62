"""The Mask scoring tab's "Layer scored by" control: switching the rule re-scores the shown layer
through the worker (one new hooked pass with ``scoring=box`` in that model's own parameters; the
way back is the cached pass), and the layer's scores are the pass's own box scores or
box x predicted IoU, read back here from the bundle the tab draws."""

from __future__ import annotations

import numpy as np

MODEL = "shapes_msrcnn"
TIMEOUT = 120_000


def test_rule_control_rescores_the_layer_through_the_worker(qtbot, msr_window) -> None:  # noqa: ANN001
    w, feat, _ = msr_window
    p = feat.panel
    p.tabs.setCurrentIndex(p.keys.index("mask_scoring"))
    view = feat.own_views["mask_scoring"]
    qtbot.waitUntil(lambda: view.drawn is not None, timeout=TIMEOUT)
    combo = view.tab.rule
    assert combo.isEnabled() and view.tab.rule_key() == "mask" == view.it.rule
    first = view.it
    np.testing.assert_array_equal(w.session.results[MODEL].scores, first.mask_scoring.mask_scores)
    assert w.passes == [MODEL]

    # Mask R-CNN's rule: a new pass through the worker, the layer carries the box scores
    combo.setCurrentIndex(combo.findData("box"))
    qtbot.waitUntil(lambda: view.it is not None and view.it is not first and view.it.rule == "box", timeout=TIMEOUT)
    qtbot.waitUntil(lambda: w.session.results[MODEL] is not None and np.array_equal(
        w.session.results[MODEL].scores, view.it.mask_scoring.box_scores.astype(np.float32)), timeout=TIMEOUT)
    assert ("scoring", "box") in w.session.params_for(MODEL).extra
    # the rule is this model's own: the session's parameters, which every other model runs
    # with (and keys its cached results by), do not change
    assert "scoring" not in dict(w.session.params.extra)
    assert w.session.params_for("shapes_maskrcnn") == w.session.params
    assert w.passes == [MODEL, MODEL]  # one pass for the layer and the tab together
    ms = view.it.mask_scoring  # the same network on the same image: the same per-rule scores
    np.testing.assert_allclose(ms.box_scores, first.mask_scoring.box_scores, atol=1e-5)
    assert not np.array_equal(ms.box_scores.astype(np.float32), first.mask_scoring.mask_scores)  # a real switch
    assert view.tab.rule_key() == "box"

    # back to Mask Scoring R-CNN's rule: the first pass, from the worker's cache (no model call)
    combo.setCurrentIndex(combo.findData("mask"))
    qtbot.waitUntil(lambda: view.it is not None and view.it.rule == "mask", timeout=TIMEOUT)
    qtbot.waitUntil(lambda: np.array_equal(w.session.results[MODEL].scores, view.it.mask_scoring.mask_scores),
                    timeout=TIMEOUT)
    assert w.session.params_for(MODEL) == w.session.params and not w.session.model_extra
    assert w.passes == [MODEL, MODEL]
