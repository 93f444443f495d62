"""The Mask head tab's class galleries (per-class sigmoid beside softmax across classes) and the
Keypoints tab (Keypoint R-CNN's per-keypoint maps), through the real window and worker: what is
drawn is read back and recomputed with torch on the logits of the ONE hooked pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segviewer.adapters.base import PredictParams
from segviewer.adapters.registry import create_adapter, get_card
from segviewer.analysis.mask_head import heatmaps_to_keypoints
from segviewer.render.heatmap import heatmap_rgba
from segviewer.ui.features.internals import InternalsFeature
from segviewer.ui.main_window import MainWindow
from segviewer.ui.worker import InferenceWorker
from tests.ui.test_feature_internals import TIMEOUT, CountingFactory, _center, _shown, scene  # noqa: F401

KP = "keypointrcnn_resnet50_fpn"


class RandomKeypointFactory(CountingFactory):
    """The registry's adapters, Keypoint R-CNN with random weights (no download), passes counted."""

    def __call__(self, model_id: str):  # noqa: ANN204
        if model_id != KP:
            return super().__call__(model_id)
        torch.manual_seed(0)
        adapter = create_adapter(KP, random_init=True)
        load = adapter.load

        def counted_load(device: str, weights=None, progress=None) -> None:  # noqa: ANN001
            load(device)
            adapter.module.backbone.register_forward_pre_hook(lambda *_: self.passes.update([KP]))

        adapter.load = counted_load
        return adapter


def _window(qtbot, path, models: list[str], params: PredictParams | None = None):  # noqa: ANN001, ANN202
    torch.set_num_threads(1)
    factory = RandomKeypointFactory()
    w = MainWindow(InferenceWorker(factory, process=False), cards=[get_card(m) for m in models])
    w.passes = factory.passes
    qtbot.addWidget(w)
    w.resize(1300, 850)
    w.show()
    qtbot.waitExposed(w)
    feat = w.findChild(InternalsFeature)
    feat.dock.show()
    feat.dock.raise_()
    if params is not None:
        w.session.params = params
    with qtbot.waitSignal(feat.captured, timeout=TIMEOUT):
        w.start([path], models=models)
    return w, feat


def _tile(pic: np.ndarray, rect: np.ndarray) -> np.ndarray:
    x, y, tw, th = (int(v) for v in rect)
    return pic[y: y + th, x: x + tw]


def test_mask_tab_galleries_equal_torch_sigmoid_and_softmax(qtbot, scene) -> None:  # noqa: F811
    w, feat = _window(qtbot, scene, ["shapes_maskrcnn"])
    try:
        it = feat.internals
        assert it is not None and it.mask_logits_all is not None, feat.message
        feat.panel.tabs.setCurrentIndex(feat.panel.keys.index("mask"))
        feat.click(*_center(feat, _shown(feat)))
        assert feat.message == ""
        i, tab, ov = feat.selected, feat.panel.mask, feat.overlays
        cls = int(it.detections.groups[i])
        t = torch.from_numpy(it.mask_logits_all[i])
        want = {"sigmoid": torch.sigmoid(t)[1:].numpy(), "softmax": torch.softmax(t[1:], 0).numpy()}
        shown = {"sigmoid": tab.sigmoid_gallery.item.image, "softmax": tab.softmax_gallery.item.image}
        rects = ov.mask_galleries["rects"]
        assert len(rects) == len(it.categories) - 1  # every foreground class's channel
        for rule in ("sigmoid", "softmax"):
            assert shown[rule] is not None
            for k, rect in enumerate(rects):  # each tile is that class's probabilities on the 0..1 scale
                x, y, tw, th = (int(v) for v in rect)
                z = tw // 28
                expect = np.repeat(np.repeat(heatmap_rgba(want[rule][k], 0.0, 1.0, "viridis", alpha=255), z, 0), z, 1)
                np.testing.assert_array_equal(_tile(shown[rule], rect), expect)
        # the box head's class is framed (yellow just outside its tile), the others are not
        for k, (x, y, tw, _th) in enumerate(rects):
            framed = tuple(shown["sigmoid"][y - 1, x + tw // 2, :3]) == (255, 210, 0)
            assert framed == (k == cls - 1)
        ch = ov.mask_choices
        assert ch.predicted == cls
        assert f"IoU of the two 28 x 28 masks {ch.iou():.2f}" in tab.choices.text()
        # the pasted mask follows the picked rule: softmax across classes, pasted as the model pastes
        sig_above = int((ov.heat.image[..., 3] == 150).sum())
        assert sig_above == int((it.mask_probs(i)[0] > 0.5).sum())
        tab.rule.setCurrentIndex(1)
        probs, _ = it.paste_probs(i, want["softmax"][cls - 1])
        assert ov.heat.image.shape[:2] == probs.shape
        assert int((ov.heat.image[..., 3] == 150).sum()) == int((probs > 0.5).sum())
        assert "softmax across classes" in tab.info.text()
        # another class's channel: its logits above, its sigmoid pasted, its tile framed white
        tab.rule.setCurrentIndex(0)
        other = 1 if cls != 1 else 2
        tab.channel.setCurrentIndex(tab.channel.findData(other))
        assert tab.channel_class() == other
        lg = it.mask_logits_all[i, other]
        want_logits = np.repeat(np.repeat(heatmap_rgba(lg, cmap="diverging", alpha=255, symmetric=True), 6, 0), 6, 1)
        np.testing.assert_array_equal(tab.logits.item.image, want_logits)
        probs, _ = it.paste_probs(i, torch.sigmoid(torch.from_numpy(lg)).numpy())
        assert int((ov.heat.image[..., 3] == 150).sum()) == int((probs > 0.5).sum())
        x, y, tw, _th = (int(v) for v in ov.mask_galleries["rects"][other - 1])
        assert tuple(ov.mask_galleries["sigmoid"][y - 1, x + tw // 2]) == (255, 255, 255, 255)
        assert it.categories[other] in tab.logits_title.text()
        assert w.passes["shapes_maskrcnn"] == 1  # everything drawn came from one pass
    finally:
        w.shutdown()


@pytest.mark.slow
def test_keypoints_tab_draws_the_heads_maps_and_the_models_keypoints(qtbot, scene) -> None:  # noqa: F811
    params = PredictParams(min_score=0.0, max_detections=4, extra=(("min_size", 160), ("max_size", 224)))
    w, feat = _window(qtbot, scene, [KP], params)
    try:
        it = feat.internals
        assert it is not None and it.keypoint_logits is not None, feat.message
        p = feat.panel
        key = feat.keypoints.key
        assert p.tabs.isTabVisible(p.keys.index(key)) and not p.tabs.isTabVisible(p.keys.index("mask"))
        p.tabs.setCurrentIndex(p.keys.index(key))
        w.state.score_threshold = 0.0
        feat.click(*_center(feat, 0))
        assert feat.message == ""
        i = feat.selected
        feat.keypoints.tab.keypoint.setCurrentIndex(3)
        drawn = feat.keypoints.drawn
        assert drawn is not None and drawn["index"] == i and drawn["picked"] == 3
        result = w.session.results[KP]  # the layers' result: the same pass
        np.testing.assert_allclose(drawn["xy"], result.keypoints[i, :, :2], rtol=1e-5, atol=1e-2)
        np.testing.assert_allclose(drawn["scores"], result.keypoints[i, :, 2], atol=1e-4)
        xy, score = heatmaps_to_keypoints(it.keypoint_logits[i], it.detections.boxes[i])  # the rule, on the maps
        np.testing.assert_allclose(it.to_image(np.concatenate([xy, xy], 1))[:, :2], drawn["xy"], atol=1e-3)
        np.testing.assert_allclose(score, drawn["scores"], atol=1e-4)
        logits = torch.from_numpy(it.keypoint_logits[i])
        probs = torch.softmax(logits.flatten(1), 1).reshape(logits.shape).numpy()
        np.testing.assert_allclose(drawn["maps"], probs, rtol=1e-5, atol=1e-9)
        pic = feat.keypoints.tab.gallery.item.image
        for k, rect in enumerate(drawn["rects"]):  # each tile: its map on its own scale, but the argmax cross
            expect = heatmap_rgba(probs[k], cmap="viridis", alpha=255)
            r, c = (int(v) for v in drawn["peaks"][k])
            keep = np.ones(expect.shape[:2], bool)
            keep[r, :] = keep[:, c] = False
            np.testing.assert_array_equal(_tile(pic, rect)[keep], expect[keep])
            assert (_tile(pic, rect)[r, c, :3] == 255).all()
        assert feat.overlays.count("hover_points") == 2  # the picked keypoint's cross
        assert w.passes[KP] == 1
    finally:
        w.shutdown()
