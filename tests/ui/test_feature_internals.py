"""The Internals dock with the bundled shapes models on a small generated scene (real weights,
no fakes): the one-pass capture through the window's own worker, RoIAlign/RoIPool grids drawn on
a click, the NMS stepper against ``torchvision.ops.batched_nms``, the mask head, the votes view
(pseudo-votes and the PCV model's own votes), the FCN stages with mean IoU, and the messages for
a semantic-only selection and a click on empty space.

Every forward pass of a model is counted (a pre-hook on its backbone / network), so the tests
also check the promise of issue #4: one pass per image and model, the layers' result and the
internals from the same pass."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch

from segviewer.adapters.registry import get_card
from segviewer.synth.dataset import write_dataset
from segviewer.ui.features.internals import InternalsFeature
from segviewer.ui.main_window import MainWindow
from segviewer.ui.model_host import registry_factory
from segviewer.ui.worker import InferenceWorker

MODELS = ["shapes_maskrcnn", "shapes_fcn", "shapes_pcv"]
TIMEOUT = 240_000  # a 2-core CPU shared with other jobs


class CountingFactory:
    """The real adapters (bundled weights, one torch thread); counts each model's forward passes."""

    def __init__(self) -> None:
        self.passes: collections.Counter[str] = collections.Counter()

    def __call__(self, model_id: str):  # noqa: ANN204
        adapter = registry_factory(model_id, torch_threads=1)
        load = adapter.load

        def counted_load(device: str, weights: Path | None = None, progress=None) -> None:  # noqa: ANN001
            load(device, weights=weights)
            m = adapter.module
            getattr(m, "backbone", m).register_forward_pre_hook(lambda *_: self.passes.update([model_id]))

        adapter.load = counted_load
        return adapter


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    write_dataset(root, 1, seed=10_000_123, size=(192, 256))
    found = sorted(root.rglob("scene_*.png"))
    images = [p for p in found if p.parent.name == "images"]
    return images[0]


@pytest.fixture
def window(qtbot, scene: Path):
    made: list[MainWindow] = []

    def make(models: tuple[str, ...] = ()) -> tuple[MainWindow, InternalsFeature]:
        torch.set_num_threads(1)
        factory = CountingFactory()
        w = MainWindow(InferenceWorker(factory, process=False), cards=[get_card(m) for m in MODELS])
        w.passes = factory.passes
        qtbot.addWidget(w)
        w.resize(1300, 850)
        w.show()
        qtbot.waitExposed(w)
        made.append(w)
        feat = w.findChild(InternalsFeature)
        assert feat is not None, "the internals feature did not install"
        feat.dock.show()
        feat.dock.raise_()
        with qtbot.waitSignal(feat.captured, timeout=TIMEOUT):
            w.start([scene], models=list(models), no_default=not models)
        return w, feat

    yield make
    for w in made:
        w.shutdown()


def _center(feat: InternalsFeature, i: int) -> tuple[float, float]:
    b = feat.internals.to_image(feat.internals.detections.boxes[[i]])[0]
    return float(b[0] + b[2]) / 2, float(b[1] + b[3]) / 2


def _shown(feat: InternalsFeature) -> int:
    d = feat.internals.detections
    return int(np.flatnonzero(d.scores >= feat.window.state.score_threshold)[0])


def test_capture_and_roi_grids(qtbot, window) -> None:
    w, feat = window()
    it = feat.internals
    assert it is not None, feat.message
    assert it.model_name == "shapes_maskrcnn" and it.replay_matches
    assert it.image_size == w.session.image.shape[:2]
    assert len(it.detections) > 0
    i = _shown(feat)
    with qtbot.waitSignal(feat.viewUpdated, timeout=5000):
        feat.click(*_center(feat, i))
    assert feat.message == ""
    bx = it.to_image(it.detections.boxes[[feat.selected]])[0]
    cx, cy = _center(feat, i)
    assert bx[0] <= cx <= bx[2] and bx[1] <= cy <= bx[3]  # the smallest shown box under the click
    name, grid = it.roi_align(feat.selected, "box")
    ph, pw = grid.output_size
    assert (ph, pw) == (7, 7)
    ov = feat.overlays
    assert ov.count("bins") == (ph + 1) + (pw + 1)  # one segment per bin line
    assert ov.count("points") == 2 * int(grid.valid.sum())  # a '+' per bilinear sample point
    assert ov.count("box") == 4
    _, pgrid = it.roi_pool(feat.selected)
    nonempty = int(((pgrid.bins[..., 2] > pgrid.bins[..., 0]) & (pgrid.bins[..., 3] > pgrid.bins[..., 1])).sum())
    assert ov.count("pool") == 4 * nonempty
    assert "px²" in feat.panel.roi.info.text() and f"FPN level {name}" in feat.panel.roi.info.text()
    # the pooled-bin heatmap follows the channel spin box (7x7 bins enlarged 8x)
    assert feat.panel.roi.align_map.item.image.shape[:2] == (56, 56)
    # the mask head's 14 x 14 grid
    feat.panel.roi.head.setCurrentIndex(1)
    assert ov.count("bins") == 15 + 15
    # hovering a bin highlights its sample points (2x2 sampling: 4 crosses = 8 segments)
    g = feat.grid
    assert g.output_size == (14, 14)
    x0, y0 = (float(v) for v in ov.segments["bins"][0, 0])  # top-left corner of bin (0, 0)
    sx, sy = it.scale
    feat._on_hover((x0 + 0.5 * g.bin_size[0] * g.stride * sx, y0 + 0.5 * g.bin_size[1] * g.stride * sy))
    assert feat.panel.roi.hover.text().startswith("Bin (0, 0)")
    assert ov.count("hover_points") == 2 * int(g.valid[0, 0].sum()) > 0
    assert ov.count("hover_cells") >= 4
    # a click on empty space: a message, the old selection stays
    sel = feat.selected
    h, wd = it.image_size
    empty = next((x, y) for y in np.linspace(0.5, h - 0.5, 17) for x in np.linspace(0.5, wd - 0.5, 17)
                 if not _inside_any(feat, x, y))
    feat.click(*empty)
    assert "click inside a detection" in feat.message
    assert feat.selected == sel


def _inside_any(feat: InternalsFeature, x: float, y: float) -> bool:
    b = feat.internals.to_image(feat.internals.detections.boxes)
    return bool(((b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3])).any())


def test_nms_stepper_equals_batched_nms(qtbot, window) -> None:
    from torchvision.ops import batched_nms

    w, feat = window()
    it, rpn = feat.internals, feat.panel.rpn
    feat.panel.tabs.setCurrentIndex(1)
    assert rpn.nms_class.count() >= 1
    assert abs(rpn.iou_threshold() - it.box_nms_thresh) < 1e-9
    c = it.det_candidates
    for combo_index in range(rpn.nms_class.count()):
        rpn.nms_class.setCurrentIndex(combo_index)
        cls = int(rpn.nms_class.currentData())
        rows = np.flatnonzero(c.groups == cls)
        for thr in (it.box_nms_thresh, 0.3):
            rpn.set_iou(thr)
            rpn.all.click()
            trace = feat.trace
            assert rpn.n_steps == len(trace)
            ours = set(trace.ids[trace.keep].tolist())
            ref = batched_nms(torch.from_numpy(c.boxes), torch.from_numpy(c.scores),
                              torch.from_numpy(c.groups), float(rpn.iou_threshold()))
            ref = set(ref.numpy().tolist()) & set(rows.tolist())
            assert ours == ref, (cls, thr)
            drawn = feat.overlays.count("kept") // 4
            assert drawn == len(ref) and feat.overlays.count("pending") == 0
            if thr == it.box_nms_thresh:  # the model's own NMS
                assert ours == {int(r) for r in rows if (it.det_kept.source == c.source[r]).any()
                                and c.groups[r] in it.det_kept.groups[it.det_kept.source == c.source[r]]}
    # the RPN's NMS, one FPN level at a time (torchvision groups it by level)
    rpn.nms_which.setCurrentIndex(1)
    assert rpn.nms_stage() == "rpn" and abs(rpn.iou_threshold() - it.rpn_nms_thresh) < 1e-9
    r = it.rpn_candidates
    assert rpn.nms_class.count() == len(np.unique(r.groups)) and rpn.nms_class.itemText(0).startswith("level ")
    for combo_index in range(rpn.nms_class.count()):
        rpn.nms_class.setCurrentIndex(combo_index)
        level = int(rpn.nms_class.currentData())
        for thr in (it.rpn_nms_thresh, 0.4):
            rpn.set_iou(thr)
            rpn.all.click()
            trace = feat.trace
            ref = batched_nms(torch.from_numpy(r.boxes), torch.from_numpy(r.scores),
                              torch.from_numpy(r.groups), float(rpn.iou_threshold()))
            ref = set(ref.numpy().tolist()) & set(np.flatnonzero(r.groups == level).tolist())
            assert set(trace.ids[trace.keep].tolist()) == ref, (level, thr)
            assert feat.overlays.count("kept") // 4 == len(ref)
    rpn.nms_which.setCurrentIndex(0)
    assert abs(rpn.iou_threshold() - it.box_nms_thresh) < 1e-9
    # stepping back and forth: after one step exactly one box is kept, its victims are drawn
    rpn.go(0)
    rpn.step.click()
    assert rpn.n_steps == 1 and feat.overlays.count("kept") == 4 and feat.overlays.count("current") == 4
    st = feat.trace.step(0)
    assert feat.overlays.count("victims") == 4 * len(st.suppressed)
    rpn.back.click()
    assert rpn.n_steps == 0 and feat.overlays.count("kept") == 0
    # anchors at a click on every level; objectness heatmap at image size
    x, y = _center(feat, 0)
    feat.click(x, y)
    assert feat.overlays.count("anchors") == 4 * len(it.aspect_ratios[0]) * len(it.anchor_sizes[0])
    assert feat.overlays.heat.image.shape[:2] == it.image_size
    assert "objectness" in rpn.anchors.text()
    assert "candidates before NMS" in rpn.counts.text()


def test_mask_head_and_votes(qtbot, window) -> None:
    w, feat = window()
    it = feat.internals
    feat.panel.tabs.setCurrentIndex(2)
    feat.click(*_center(feat, _shown(feat)))
    assert feat.message == ""
    assert feat.panel.mask.logits.item.image.shape[:2] == (28 * 6, 28 * 6)
    probs, (x0, y0) = it.mask_probs(feat.selected)
    heat = feat.overlays.heat
    assert heat.isVisible() and heat.image.shape[:2] == probs.shape
    above = int((heat.image[..., 3] == 150).sum())
    assert above == int((probs > 0.5).sum())
    feat.panel.mask.threshold.setValue(90)
    assert int((feat.overlays.heat.image[..., 3] == 150).sum()) == int((probs > 0.9).sum())
    # votes: pseudo-votes of the window's instance result, peaks, back-projection on a click. The
    # instance result is this model's own output (its masks at 0.5), put where the worker puts it.
    from segviewer.core.results import Detections

    d = it.detections
    w.session.results["shapes_maskrcnn"] = Detections(
        it.image_size, it.to_image(d.boxes), d.scores, d.groups.astype(np.int32), it.categories, masks=it.masks(0.5))
    vt = feat.panel.votes
    with qtbot.waitSignal(feat.votesReady, timeout=60_000):
        feat.panel.tabs.setCurrentIndex(3)  # the PCV model is the first source
    labels = [vt.source.itemText(i) for i in range(vt.source.count())]
    assert labels == ["PCV model (shapes_pcv)", "pseudo-votes from shapes_maskrcnn"]
    with qtbot.waitSignal(feat.votesReady, timeout=60_000):
        vt.source.setCurrentIndex(1)
    v = feat.votes
    assert v is not None and v.kind == "pseudo" and len(v.peaks) > 0, feat.message
    assert abs(vt.threshold.value() - vt.PSEUDO_THRESHOLD) < 1e-9 and vt.unit.isEnabled()
    r, c = v.peaks.positions[0]
    feat.click(c + 0.5, r + 0.5)
    assert feat.votes.picked == 0 and feat.votes.mask.sum() > 0
    assert feat.overlays.count("peaks") == 2 * len(v.peaks)
    feat.click(-5, -5)
    assert "No vote peak" in feat.message
    feat._on_hover((c + 0.5, r + 0.5))  # a pseudo-vote is one-hot
    assert vt.hover.text().startswith("Votes of pixel") and " 1.00" in vt.hover.text()


def test_votes_from_the_pcv_model(qtbot, window) -> None:
    """The PCV net's own votes: one pass of shapes_pcv (its voting head), the accumulator on its
    stride-4 grid placed over the image, peaks, back-projection, a pixel's distribution on hover,
    and the back-projected instances drawn at image resolution."""
    w, feat = window()
    vt = feat.panel.votes
    with qtbot.waitSignal(feat.votesReady, timeout=TIMEOUT):
        feat.panel.tabs.setCurrentIndex(3)
    v = feat.votes
    assert v is not None and v.kind == "pcv", feat.message
    assert w.passes["shapes_pcv"] == 1
    assert not vt.unit.isEnabled() and abs(vt.threshold.value() - vt.PCV_THRESHOLD) < 1e-9
    vp = feat.pcv
    assert v.acc.shape == vp.votes.shape[1:] and v.geometry.unit == round(vp.cell_size)
    assert len(v.peaks) >= 2, v.describe()  # the scene has several shapes
    h, wd = w.session.image.shape[:2]
    x, y, gw, gh = v.rect
    assert abs(gw - wd) <= v.scale[0] and abs(gh - h) <= v.scale[1]  # the grid covers the image
    assert feat.overlays.heat.isVisible() and feat.overlays.heat.image.shape[:2] == v.acc.shape
    r, c = v.peaks.positions[0]
    px, py = (c + 0.5) * v.scale[0], (r + 0.5) * v.scale[1]
    feat.click(px, py)
    assert feat.message == "" and v.picked == 0 and v.mask.sum() > 0
    assert "Peak 0" in vt.info.text()
    feat._on_hover((px, py))
    assert vt.hover.text().startswith("Votes of grid")
    assert vt.dist.item.image is not None and vt.dist.item.image.shape[:2] == (9 * 14, 9 * 14)
    vt.show_what.setCurrentIndex(1)  # the back-projected instances at image resolution
    inst = v.image_instances()
    assert inst.shape == (h, wd) and set(np.unique(inst)) - {0} <= set(range(1, len(v.peaks) + 1))
    assert feat.overlays.heat.image.shape[:2] == (h, wd)
    # the PCV model's votes came from the worker: its pass is cached with the internals
    assert w.passes["shapes_pcv"] == 1 and vt.source.count() == 1


def test_fcn_stages_and_no_rpn_message(qtbot, window) -> None:
    w, feat = window()
    feat.panel.tabs.setCurrentIndex(4)
    if feat.stages is None:
        with qtbot.waitSignal(feat.stagesReady, timeout=TIMEOUT):
            pass
    assert set(feat.stages) == {"32s", "16s", "8s"}
    assert "FCN-8s mIoU" in feat.panel.fcn.info.text()
    assert w.session.results["FCN stage"] is feat.stages["8s"]
    feat.panel.fcn.buttons["32s"].setChecked(True)
    assert w.session.results["FCN stage"] is feat.stages["32s"]
    # a semantic-only selection: a clear message, nothing captured, no traceback
    w.session.set_models(["shapes_fcn"])
    feat.refresh()
    assert feat.internals is None
    assert "no region proposal network" in feat.message
    feat.panel.tabs.setCurrentIndex(0)
    feat.click(10, 10)
    assert "no region proposal network" in feat.message


def test_one_pass_per_image_and_model(qtbot, window) -> None:
    """The layers' result and the internals come from the same pass of the window's worker; the
    FCN tab opened after a plain FCN prediction replaces it with one hooked pass; coming back to
    the image runs nothing."""
    w, feat = window(("shapes_maskrcnn", "shapes_fcn"))
    s = w.session
    qtbot.waitUntil(lambda: {"shapes_maskrcnn", "shapes_fcn"} <= set(s.results), timeout=TIMEOUT)
    assert w.passes["shapes_maskrcnn"] == 1 and w.passes["shapes_fcn"] == 1
    it, det = feat.internals, s.results["shapes_maskrcnn"]
    assert it.replay_matches and len(det) == len(it.detections)
    np.testing.assert_allclose(det.boxes, it.to_image(it.detections.boxes), atol=1e-3)
    np.testing.assert_array_equal(det.scores, it.detections.scores)
    with qtbot.waitSignal(feat.stagesReady, timeout=TIMEOUT):
        feat.panel.tabs.setCurrentIndex(4)
    assert w.passes["shapes_fcn"] == 2  # the plain pass, then ONE hooked pass that replaced it
    qtbot.waitUntil(lambda: s.results.get("shapes_fcn") is not None, timeout=TIMEOUT)
    np.testing.assert_array_equal(s.results["shapes_fcn"].labels, feat.stages["8s"].labels)
    # back to the same image: every result and bundle comes from the worker's cache
    with qtbot.waitSignal(feat.stagesReady, timeout=TIMEOUT):
        s.show_index(0)
    qtbot.waitUntil(lambda: feat.internals is not None, timeout=TIMEOUT)
    assert w.passes == {"shapes_maskrcnn": 1, "shapes_fcn": 2}


def test_a_cache_hit_of_the_shown_bundle_keeps_the_selection(qtbot, window) -> None:
    """The dock captured the default detector on its own (``show=False``); selecting that model in
    the Models picker is then a cache hit that carries the same bundle: the user's detection, the
    NMS step and the anchors stay. A genuinely new bundle for the model still refreshes."""
    import dataclasses

    from segviewer.ui.worker import Prediction

    w, feat = window()
    it, s = feat.internals, w.session
    assert "shapes_maskrcnn" not in s.models
    shown = np.flatnonzero(it.detections.scores >= w.state.score_threshold)
    best = int(np.argmax(it.detections.scores))
    other = next((int(i) for i in shown[np.argsort(it.detections.scores[shown])]
                  if i != best and not _inside(feat, best, *_center(feat, int(i)))), None)
    assert other is not None, "the scene needs a second detection away from the best one"
    feat.click(*_center(feat, other))
    assert feat.selected == other != best, feat.message
    feat.panel.tabs.setCurrentIndex(1)
    rpn = feat.panel.rpn
    rpn.step.click()
    feat.click(*_center(feat, other))  # anchors there
    assert rpn.n_steps == 1 and feat.anchor_point is not None and feat.overlays.count("anchors") > 0
    point, trace = feat.anchor_point, feat.trace
    seen: list[Prediction] = []
    w.session.worker.resultReady.connect(seen.append)
    w.picker.set_checked("shapes_maskrcnn", True)  # the Models picker: the session asks for it
    qtbot.waitUntil(lambda: s.results.get("shapes_maskrcnn") is not None, timeout=TIMEOUT)
    hit = next(p for p in seen if p.model_id == "shapes_maskrcnn")
    assert hit.cached and hit.internals is it and w.passes["shapes_maskrcnn"] == 1
    assert feat.internals is it and feat.selected == other
    assert rpn.n_steps == 1 and feat.trace is trace and feat.anchor_point == point
    assert feat.overlays.count("anchors") > 0 and feat.overlays.count("kept") == 4
    # a new bundle (another pass of the model) is applied: the selection goes back to the best
    fresh = dataclasses.replace(hit, internals=dataclasses.replace(it), cached=False)
    w.session.worker.resultReady.emit(fresh)
    assert feat.internals is fresh.internals and feat.selected == best and rpn.n_steps == 0


def _inside(feat: InternalsFeature, i: int, x: float, y: float) -> bool:
    b = feat.internals.to_image(feat.internals.detections.boxes[[i]])[0]
    return bool(b[0] <= x <= b[2] and b[1] <= y <= b[3])


def test_the_fcn_stage_layer_leaves_with_its_tab_the_fcn_and_the_image(qtbot, window) -> None:
    """Issue #10: the FCN stage picked in the dock shows only while its tab is on screen, goes when
    the FCN is unticked (until a stage is picked again) and when another view takes the canvas."""
    w, feat = window(("shapes_fcn",))
    s = w.session
    with qtbot.waitSignal(feat.stagesReady, timeout=TIMEOUT):
        feat.panel.tabs.setCurrentIndex(4)
    assert s.results.get("FCN stage") is feat.stages["8s"]
    feat.panel.tabs.setCurrentIndex(0)
    assert "FCN stage" not in s.results, "another tab: the stage layer goes"
    feat.panel.tabs.setCurrentIndex(4)
    assert s.results.get("FCN stage") is feat.stages["8s"], "back on the tab: it returns"
    w.picker.set_checked("shapes_fcn", False)
    qtbot.waitUntil(lambda: "FCN stage" not in s.results, timeout=TIMEOUT)
    assert feat.panel.fcn.stage() is None
    with qtbot.waitSignal(feat.stagesReady, timeout=TIMEOUT):
        feat.request_stages(force=True)
    assert "FCN stage" not in s.results, "no stage comes back on its own once the FCN is unticked"
    feat.panel.fcn.buttons["16s"].setChecked(True)
    assert s.results.get("FCN stage") is feat.stages["16s"]
    w.set_view("video", lambda x, y: [])  # what opening a video does
    assert "FCN stage" not in s.results and feat.stages is None and feat.overlays.segments == {}
    assert "Open an image" in feat.message
