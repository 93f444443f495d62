"""First contact with the Internals dock (helper G's QA on real photographs), each defect found
pinned here with the bundled shapes models on a generated scene:

* a click's complaint on one tab ("no vote peak here") stayed on screen on every other tab;
* the RoI / Mask / Keypoints tabs pre-selected the best detection even when the score threshold
  hides it (its maps drawn for a box the canvas does not show, while a click said "no detection
  scores 0.50 or more");
* the detector's status line ("Click a detection (RoI, Mask) or anywhere (RPN)") sat above the
  FCN's and the PCV net's tabs, where a click means something else;
* with only a semantic or voting model ticked, the status line kept "Running shapes_maskrcnn
  once with hooks…" (or the last detector's pass) for ever, and a click on the FCN stages tab
  answered "The internals are still being captured.";
* the RoI tab offered the mask head's pooler for a model without one (Keypoint / Faster R-CNN);
* a click on the Votes tab while the PCV net runs said to "show an instance model's result first";
* a click on a photo where the detector found nothing said "lower the score threshold";
* the dense tab's focal-loss heading lost its end ("< 0.4 negative, between ignored" read as an HTML
  tag) and named RetinaNet's IoU rule for FCOS too;
* marker crosses (keypoints, vote peaks, the clicked unit) were sized in image pixels: invisible
  on a 4000 x 3000 photo, wider than an 8 x 8 one;
* while the next image's pass ran, the Mask head / RoI / RPN tabs (and the Queries tab) kept the
  last image's logits, galleries, bins, counts and NMS classes;
* the RPN objectness raster was the photo's full size (48 MB a level at 4000 x 3000, 17 cached).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from segviewer.ui.widgets.internals_tabs import InternalsPanel
from tests.ui.test_feature_internals import TIMEOUT, _center, _shown, scene, window  # noqa: F401


def _go(feat, key: str) -> None:  # noqa: ANN001
    feat.panel.tabs.setCurrentIndex(feat.panel.keys.index(key))


def test_click_messages_belong_to_their_tab_and_hidden_detections_are_not_preselected(qtbot, window) -> None:  # noqa: ANN001, F811
    w, feat = window()
    it = feat.internals
    assert it is not None and len(it.detections)
    _go(feat, "roi")
    feat.click(-50.0, -50.0)  # outside every box
    assert "click inside a detection" in feat.message
    assert not feat.panel.status.isHidden()  # the detector's pass, on its tab
    _go(feat, "fcn")
    assert feat.message == ""  # the RoI tab's complaint is gone
    assert feat.panel.status.isHidden()  # "Click a detection (RoI, Mask)…" is not about this tab
    feat.click(10.0, 10.0)  # the stages tab takes no clicks: nothing to say
    assert feat.message == ""
    _go(feat, "roi")
    assert feat.message == "" and not feat.panel.status.isHidden()

    # votes asked for before they exist: say they are coming, not "show an instance model"
    _go(feat, "votes")
    feat.votes = None
    feat.panel.votes.info.setText("Running shapes_pcv once (its voting head)…")
    feat.click(10.0, 10.0)
    assert feat.message.startswith("The votes are not ready yet: Running shapes_pcv"), feat.message

    # a threshold above every score: no detection is pre-selected, nothing drawn for a hidden box
    _go(feat, "mask")
    best = int(np.argmax(it.detections.scores))
    w.state.score_threshold = float(it.detections.scores.max()) + 0.01
    feat._on_captured(dataclasses.replace(it))  # a new bundle of the model, as the worker delivers it
    assert feat.selected is None
    assert feat.overlays.count("box") == 0 and not feat.overlays.heat.isVisible()
    # below the threshold the best shown one is picked (here: the best of all)
    w.state.score_threshold = 0.0
    feat._on_captured(dataclasses.replace(it))
    assert feat.selected == best and feat.overlays.count("box") > 0


def test_semantic_only_selection_clears_the_detector_status(qtbot, window) -> None:  # noqa: ANN001, F811
    w, feat = window()
    assert feat.panel.status.text().startswith("shapes_maskrcnn")
    w.picker.set_checked("shapes_fcn", True)  # only a semantic model ticked: no detector to look inside
    qtbot.waitUntil(lambda: "no region proposal network" in feat.message, timeout=TIMEOUT)
    assert feat.panel.status.text() == ""
    _go(feat, "upsampling")  # the FCN's own tab: the detector's complaint is not about it
    assert "no region proposal network" not in feat.message
    _go(feat, "fcn")
    feat.click(10.0, 10.0)
    assert feat.message == ""
    _go(feat, "roi")  # back on a detector tab: the reason is shown again
    assert "no region proposal network" in feat.message


def test_roi_tab_offers_the_mask_pooler_only_with_a_mask_head(qtbot) -> None:  # noqa: ANN001
    panel = InternalsPanel()
    qtbot.addWidget(panel)
    head = panel.roi.head
    mask = head.model().item(head.findData("mask"))
    panel.set_offered(("roi", "rpn", "mask_logits"))
    assert mask.isEnabled()
    head.setCurrentIndex(head.findData("mask"))
    panel.set_offered(("roi", "rpn", "keypoint_heatmaps"))  # Keypoint R-CNN: no mask head
    assert not mask.isEnabled() and panel.roi.head_name() == "box"
    panel.set_offered(("roi", "rpn", "mask_logits"))
    assert mask.isEnabled()


def test_focal_heading_names_each_models_assignment_in_full(qtbot) -> None:  # noqa: ANN001
    from PySide6.QtGui import QTextDocument

    from segviewer.ui.widgets.internals_dense_tab import DenseTab

    tab = DenseTab()
    qtbot.addWidget(tab)
    doc = QTextDocument()
    for kind, rule in (("retinanet", "IoU ≥ 0.5 positive, < 0.4 negative, between ignored"),
                       ("fcos", "nothing ignored")):
        tab.set_focal_rule(kind)
        doc.setHtml(tab.focal_title.text())
        assert doc.toPlainText().endswith(rule + ")"), doc.toPlainText()  # the whole rule, no tag eaten
    assert "RetinaNet" not in doc.toPlainText()  # FCOS: centre sampling, not RetinaNet's IoU rule


def test_marker_size_is_screen_pixels_at_any_zoom(qtbot) -> None:  # noqa: ANN001
    """A keypoint or vote-peak cross of 6 image pixels was 0.7 px on screen over a 4000 x 3000 photo
    and wider than the whole of an 8 x 8 image; Overlays.screen_px sizes markers on screen."""
    import pyqtgraph as pg

    from segviewer.ui.features._internals_views import Overlays

    view = pg.GraphicsLayoutWidget()
    qtbot.addWidget(view)
    view.resize(400, 300)
    vb = view.addViewBox(lockAspect=True)
    view.show()
    qtbot.waitExposed(view)
    ov = Overlays(vb)
    for width in (4000.0, 8.0):
        vb.setRange(xRange=(0.0, width), yRange=(0.0, width * 0.75), padding=0.0)
        qtbot.wait(20)
        per_px = max(vb.viewPixelSize())
        assert np.isclose(ov.screen_px(6.0), 6.0 * per_px)
        assert (ov.screen_px(6.0) > 6.0) == (width > 400.0)  # bigger than 6 image px only when zoomed out


def test_a_new_image_leaves_nothing_of_the_last_one_in_the_tabs(qtbot, window, tmp_path) -> None:  # noqa: ANN001, F811
    """While the next image's pass runs, the Mask head tab showed the last image's logits, galleries
    and "28 x 28 logits …; 9568 px above 0.50", the RoI tab its bins, the RPN tab its counts and NMS
    classes; the Upsampling tab the last image's comparison numbers."""
    import cv2

    w, feat = window()
    p = feat.panel
    _go(feat, "mask")
    feat.click(*_center(feat, _shown(feat)))
    assert p.mask.logits.item.image is not None and "logits" in p.mask.info.text()
    _go(feat, "roi")
    feat.click(*_center(feat, _shown(feat)))
    assert p.roi.align_map.item.image is not None
    assert p.rpn.counts.text() and p.rpn.nms_class.count()
    other = tmp_path / "other.png"
    cv2.imwrite(str(other), cv2.flip(cv2.imread(str(w.session.path)), 1))
    seen: dict[str, object] = {}

    def on_shown() -> None:  # runs after the dock's own slot, before the new pass can answer
        seen.update(internals=feat.internals is None, logits=p.mask.logits.item.image is None,
                    gallery=p.mask.sigmoid_gallery.item.image is None, info=p.mask.info.text(),
                    bins=p.roi.align_map.item.image is None, counts=p.rpn.counts.text(),
                    groups=p.rpn.nms_class.count())

    w.session.imageShown.connect(on_shown)
    w.session.open_paths([other])
    qtbot.waitUntil(lambda: bool(seen), timeout=TIMEOUT)
    assert seen == {"internals": True, "logits": True, "gallery": True, "info": "Click a detection on the image.",
                    "bins": True, "counts": "", "groups": 0}
    # and the new image's bundle fills them again
    qtbot.waitUntil(lambda: feat.internals is not None, timeout=TIMEOUT)
    assert p.rpn.counts.text() and p.rpn.nms_class.count()


def test_a_click_on_an_image_with_no_detection_says_so(qtbot, window, tmp_path) -> None:  # noqa: ANN001, F811
    """A flat grey photo: Mask R-CNN finds nothing; a click said "lower the score threshold", which
    cannot help when no box passed the model's own threshold."""
    import cv2

    w, feat = window()
    flat = tmp_path / "flat.png"
    cv2.imwrite(str(flat), np.full((120, 160, 3), 127, np.uint8))
    with qtbot.waitSignal(feat.captured, timeout=TIMEOUT):
        w.session.open_paths([flat])
    qtbot.waitUntil(lambda: feat.internals is not None, timeout=TIMEOUT)
    assert len(feat.internals.detections) == 0
    _go(feat, "mask")
    feat.click(80.0, 60.0)
    assert "detected nothing in this image" in feat.message, feat.message
    assert "lower the score threshold" not in feat.message


def test_queries_tab_keeps_nothing_of_the_last_image(qtbot, show_window, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """While the next image's pass runs (or with the model unticked) the Queries tab kept the last
    image's counts, query text and class bars."""
    pytest.importorskip("transformers")
    from tests.adapters import hf_tiny
    from tests.ui.test_internals_queries_view import DETR, _open

    w, feat = _open(qtbot, show_window, tmp_path, monkeypatch, DETR, hf_tiny.detr(tmp_path / "detr"))
    t = feat.queries.tab
    assert t.counts.text() and t.bars.rows
    feat._route(None)  # what a new image (or no detector) does before its bundle arrives
    assert t.counts.text() == "" and t.bars.rows == [] and t.query.count() == 0
    assert t.info.text().startswith("Click a detection or a segment")


def test_rpn_objectness_raster_is_bounded_on_a_big_photo(qtbot, window) -> None:  # noqa: ANN001, F811
    """The objectness heatmap was rasterised at the photo's full size (48 MB a level at 4000 x 3000,
    up to 17 levels cached across images): now at most OBJECTNESS_MAX_PX on the long side, stretched
    over the image, the same cells; only the current bundle's levels are kept."""
    from segviewer.render.heatmap import heatmap_rgba
    from segviewer.ui.features._internals_views import OBJECTNESS_MAX_PX

    w, feat = window()
    small = feat.internals
    _go(feat, "rpn")
    big = dataclasses.replace(small, image_size=(3000, 4000))  # the same pass, as over a 4000 x 3000 photo
    feat.internals = big
    feat.update_view()
    heat = feat.overlays.heat
    assert heat.isVisible() and heat.image.shape[:2] == (1536, OBJECTNESS_MAX_PX)
    r = heat.mapRectToParent(heat.boundingRect())
    assert (r.width(), r.height()) == pytest.approx((4000, 3000))
    m = big.objectness_map(0)
    np.testing.assert_array_equal(heat.image, heatmap_rgba(m, 0.0, 1.0, "magma", alpha=200, out_size=(1536, 2048),
                                                           extent=big.heatmap_extent(m.shape), alpha_by_value=True))
    assert {k[0] for k in feat.overlays._objectness} == {id(big)}  # the 192 x 256 bundle's level is gone


def test_keypoint_tiles_name_their_keypoint_in_full() -> None:
    """The keypoint gallery's 56 px tiles cut 9 of COCO's 17 names ("left_sho~", "right_el~")."""
    from segviewer.adapters.registry import get_card
    from segviewer.ui.features._internals_keypoints import tile_label

    COCO_KEYPOINT_NAMES = get_card("keypointrcnn_resnet50_fpn").keypoint_names  # noqa: N806

    fits = 56 // 6  # render.mask_gallery's characters per tile at zoom 1
    labels = [tile_label(n) for n in COCO_KEYPOINT_NAMES]
    assert len(set(labels)) == len(labels) == 17
    assert [lab for lab in labels if len(lab) > fits] == ["L shoulder", "R shoulder"]
    assert tile_label("left_elbow") == "L elbow" and tile_label("nose") == "nose"


def test_a_dock_behind_another_tab_runs_no_model(qtbot, scene) -> None:  # noqa: ANN001, F811
    """With no model ticked the Internals dock looks inside the bundled detector, but only when it
    is on screen: it sits behind the Models tab, and at start-up (while the layout settles) Qt
    called every tabbed dock visible, so the first image ran shapes_maskrcnn for nobody."""
    from segviewer.adapters.registry import get_card
    from segviewer.ui.features.internals import InternalsFeature
    from segviewer.ui.main_window import MainWindow
    from segviewer.ui.worker import InferenceWorker
    from tests.ui.test_feature_internals import MODELS, CountingFactory

    factory = CountingFactory()
    w = MainWindow(InferenceWorker(factory, process=False), cards=[get_card(m) for m in MODELS])
    qtbot.addWidget(w)
    try:
        w.resize(1300, 850)
        w.show()
        qtbot.waitExposed(w)
        feat = w.findChild(InternalsFeature)
        assert w.tabifiedDockWidgets(feat.dock)  # a tab with the Models dock, behind it
        w.start([scene], models=[], no_default=True)
        qtbot.waitUntil(lambda: w.session.image is not None, timeout=TIMEOUT)
        qtbot.wait(300)
        assert not feat.active and sum(factory.passes.values()) == 0
        assert not any(w.worker.pending_slots())
        with qtbot.waitSignal(feat.captured, timeout=TIMEOUT):  # brought to the front: it looks then
            feat.dock.raise_()
        assert factory.passes["shapes_maskrcnn"] == 1 and feat.internals is not None
    finally:
        w.shutdown()
