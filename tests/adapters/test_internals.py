"""Forward hooks on small random-init torchvision detectors: one pass, every stage, and the
replayed stages end exactly where the model ended. No weights are downloaded."""

import numpy as np
import pytest
import torch
import torchvision
from torchvision.models.detection import fasterrcnn_resnet50_fpn, maskrcnn_resnet50_fpn

from segviewer.adapters.internals import NoRPNError, capture_internals, paste_mask
from segviewer.analysis.roi_align import BadBoxError, NothingHereError
from segviewer.core.errors import SegviewerError

torch.set_num_threads(1)
SIZE = dict(min_size=128, max_size=192)


def _image(seed: int = 0, h: int = 120, w: int = 170) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    img[20:70, 30:90] = (200, 40, 40)  # some structure for the random net to respond to
    return img


@pytest.fixture(scope="module")
def maskrcnn() -> torch.nn.Module:
    torch.manual_seed(0)
    m = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=6, **SIZE).eval()
    m.roi_heads.score_thresh = 0.0
    m.rpn._pre_nms_top_n["testing"] = 300  # small but still exercises the per-level top-k
    m.rpn._post_nms_top_n["testing"] = 200
    return m


@pytest.fixture(scope="module")
def captured(maskrcnn: torch.nn.Module):
    return capture_internals(maskrcnn, _image(), keep_pooled=True)


def test_one_pass_captures_every_stage(captured) -> None:
    it = captured
    assert it.replay_matches, "replayed RPN/box-head stages must end where the model ended"
    assert it.feature_names == ("0", "1", "2", "3", "pool")
    assert [it.stride(n) for n in it.feature_names] == [(4, 4), (8, 8), (16, 16), (32, 32), (64, 64)]
    assert len(it.objectness) == 5 and all(o.shape[0] == 3 for o in it.objectness)
    assert len(it.anchors) == sum(o.size for o in it.objectness) == it.counts["anchors"]
    c = it.counts
    assert c["rpn_candidates"] >= c["rpn_kept"] >= c["proposals"] > 0
    assert c["proposals"] <= 200 and c["det_candidates"] >= c["det_kept"] >= c["detections"] > 0
    assert it.mask_logits is not None and it.mask_logits.shape == (c["detections"], 28, 28)
    assert it.model_size[0] == 128 and it.padded_size[0] % 32 == 0
    assert it.timings["model"] > 0


def test_rpn_candidates_point_at_their_anchors(captured) -> None:
    it = captured
    src = it.rpn_candidates.source
    levels = np.searchsorted(np.cumsum([o.size for o in it.objectness]), src, side="right")
    np.testing.assert_array_equal(levels, it.rpn_candidates.groups)
    # each candidate's score is the sigmoid of its anchor's objectness logit
    flat = np.concatenate([o.transpose(1, 2, 0).ravel() for o in it.objectness])
    np.testing.assert_allclose(it.rpn_candidates.scores, 1 / (1 + np.exp(-flat[src])), atol=1e-6)


def test_nms_steppers_equal_the_models_nms(captured) -> None:
    it = captured
    rpn = it.rpn_nms()
    assert set(it.rpn_candidates.source[rpn.keep].tolist()) == set(it.rpn_kept.source.tolist())
    box = it.box_nms()
    kept = set(zip(it.det_candidates.source[box.keep].tolist(), it.det_candidates.groups[box.keep].tolist()))
    assert kept == set(zip(it.det_kept.source.tolist(), it.det_kept.groups.tolist()))
    # per-group traces (what a view steps through) name candidate rows and agree with the full run
    for level in np.unique(it.rpn_candidates.groups):
        t = it.rpn_nms(int(level))
        assert set(t.ids[t.keep].tolist()) == set(rpn.keep[it.rpn_candidates.groups[rpn.keep] == level].tolist())
    cls = int(it.det_candidates.groups[0])
    t = it.box_nms(cls)
    assert set(t.ids[t.keep].tolist()) == set(box.keep[it.det_candidates.groups[box.keep] == cls].tolist())
    with pytest.raises(NothingHereError):
        it.box_nms(10_000)


def test_roi_align_grids_reproduce_the_box_pooler(captured) -> None:
    """The box head pooled every proposal; our grid on the mapped level gives the same numbers."""
    it = captured
    pooled = it.pooled_box_features
    assert pooled is not None and pooled.shape[0] == len(it.proposals)
    rng = np.random.default_rng(0)
    seen = set()
    picks = rng.choice(len(it.proposals), size=min(25, len(it.proposals)), replace=False)
    for k in picks:
        name, grid = it.roi_align_box(it.proposals.boxes[k], "box")
        seen.add(name)
        # random-init activations reach ~100: float32 itself is only good to ~1e-5 there
        np.testing.assert_allclose(grid.pooled(it.features[name]), pooled[k], atol=1e-5, rtol=1e-6)
    assert seen  # at least one level exercised (all four with real sizes; see analysis tests)


def test_mask_head_grid_and_pasted_masks_match_torchvision(maskrcnn, captured) -> None:
    it = captured
    name, grid = it.roi_align(0, "mask")
    assert grid.output_size == (14, 14) and grid.sampling == (2, 2)
    with torch.inference_mode():
        out = maskrcnn([torch.from_numpy(_image()).permute(2, 0, 1).float() / 255])[0]
    np.testing.assert_allclose(it.to_image(it.detections.boxes), out["boxes"].numpy(), atol=1e-4)
    full = out["masks"][:, 0].numpy()
    for i in range(min(len(full), 10)):
        probs, (x0, y0) = it.mask_probs(i)
        ref = full[i, y0: y0 + probs.shape[0], x0: x0 + probs.shape[1]]
        np.testing.assert_allclose(probs, ref, atol=1e-6)
        outside = full[i].copy()
        outside[y0: y0 + probs.shape[0], x0: x0 + probs.shape[1]] = 0
        assert outside.max() == 0
    ms = it.masks(0.5)
    np.testing.assert_array_equal(ms.to_full()[:10], full[:10] > 0.5)


def test_paste_mask_equals_paste_masks_in_image() -> None:
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    rng = np.random.default_rng(2)
    logits = rng.standard_normal((28, 28)).astype(np.float32) * 3
    for box in ([10.3, 5.7, 60.2, 40.9], [-5, -8, 30, 20], [90, 50, 140, 110]):
        ref = paste_masks_in_image(torch.sigmoid(torch.from_numpy(logits))[None, None],
                                   torch.tensor([box], dtype=torch.float32), (100, 120))[0, 0].numpy()
        crop, (x0, y0) = paste_mask(logits, np.array(box), (100, 120))
        full = np.zeros_like(ref)
        full[y0: y0 + crop.shape[0], x0: x0 + crop.shape[1]] = crop
        np.testing.assert_allclose(full, ref, atol=1e-6)


def test_views_clicks_and_heatmap_extent(captured) -> None:
    it = captured
    assert it.objectness_map(0).shape == it.objectness[0].shape[1:]
    assert it.feature_energy("2").shape == it.features["2"].shape[1:]
    x0, y0, x1, y1 = it.heatmap_extent(it.objectness[0].shape[1:])
    assert x1 == pytest.approx(it.model_size[1] / 4) and y1 == pytest.approx(it.model_size[0] / 4)
    at = it.anchors_at(50.0, 40.0, 1)
    np.testing.assert_array_equal(it.anchors[at.flat_index], at.boxes)
    assert it.anchor_objectness(at).shape == (3,)
    with pytest.raises(NothingHereError):
        it.anchors_at(-10.0, 40.0, 1)
    b = it.to_image(it.detections.boxes)[0]
    i = it.detection_at(float(b[0] + b[2]) / 2, float(b[1] + b[3]) / 2)
    assert 0 <= i < len(it.detections)
    with pytest.raises(NothingHereError):
        it.detection_at(1e6, 1e6)
    with pytest.raises(NothingHereError):
        it.roi_align(10_000)
    with pytest.raises(BadBoxError):
        it.roi_align_box(np.array([5, 5, 5, 30]))
    name, pool = it.roi_pool(0)
    assert pool.difference().difference >= 0


def test_faster_rcnn_has_no_mask_internals() -> None:
    torch.manual_seed(1)
    m = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3, **SIZE).eval()
    it = capture_internals(m, _image(1, 100, 100), score_thresh=0.0)
    assert it.replay_matches and it.mask_logits is None and it.mask_pooler is None
    with pytest.raises(SegviewerError, match="no mask head"):
        it.mask_probs(0)
    with pytest.raises(SegviewerError, match="no mask head pooler"):
        it.roi_align(0, "mask")
    assert m.roi_heads.score_thresh == 0.05  # the override was restored


@pytest.mark.parametrize("builder", ["retinanet_resnet50_fpn", "fcos_resnet50_fpn", "lraspp_mobilenet_v3_large"])
def test_models_without_rpn_are_refused_clearly(builder: str) -> None:
    m = torchvision.models.get_model(builder, weights=None, weights_backbone=None, num_classes=3)
    with pytest.raises(NoRPNError) as err:
        capture_internals(m, _image())
    assert "no region proposal network" in str(err.value) and "\n" not in str(err.value)


def test_bad_inputs() -> None:
    with pytest.raises(SegviewerError, match="torch model"):
        capture_internals(object(), _image())

    class Unloaded:
        module = None

    with pytest.raises(SegviewerError, match="not loaded"):
        capture_internals(Unloaded(), _image())


def test_bad_image_is_refused(maskrcnn) -> None:
    with pytest.raises(SegviewerError, match="RGB uint8"):
        capture_internals(maskrcnn, np.zeros((10, 10), np.float32))


def test_works_through_the_detection_adapter() -> None:
    mod = pytest.importorskip("segviewer.adapters.torchvision_detection")
    from segviewer.adapters.base import ModelCard
    from segviewer.synth.classes import DETECTION_CATEGORIES

    card = ModelCard(id="maskrcnn_resnet50_fpn", task="instance", family="torchvision",
                     categories=DETECTION_CATEGORIES, weights_source="none")
    adapter = mod.TorchvisionDetector(card)
    torch.manual_seed(3)
    adapter.load("cpu")
    adapter.module.transform.min_size, adapter.module.transform.max_size = (128,), 160
    it = capture_internals(adapter, _image(3), score_thresh=0.0)
    assert it.replay_matches and it.categories == DETECTION_CATEGORIES


def test_capture_activations_of_named_stages() -> None:
    from segviewer.adapters.internals import capture_activations

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1, stride=2))
    x = torch.rand(1, 3, 16, 12)
    acts = capture_activations(net, x, ["0", "2"])
    with torch.inference_mode():
        np.testing.assert_allclose(acts["0"], net[0](x)[0].numpy(), atol=1e-6)
        np.testing.assert_allclose(acts["2"], net(x)[0].numpy(), atol=1e-6)
    norm = capture_activations(net, x, ["2"], reduce="norm")["2"]
    np.testing.assert_allclose(norm, np.linalg.norm(acts["2"], axis=0), atol=1e-5)
    with pytest.raises(SegviewerError, match="no submodule 'nope'"):
        capture_activations(net, x, ["nope"])
    with pytest.raises(SegviewerError, match="reduction"):
        capture_activations(net, x, ["0"], reduce="mean")


def test_fcn_skip_stages_are_capturable() -> None:
    """Our FCN's skip scores (pool4 at stride 16, pool3 at stride 8) through the same helper."""
    fcn = pytest.importorskip("segviewer.adapters.nets.fcn")
    from segviewer.adapters.internals import capture_activations

    torch.manual_seed(0)
    try:
        net = fcn.FCN(num_classes=3)
    except TypeError:
        pytest.skip("FCN constructor changed")
    acts = capture_activations(net, torch.rand(1, 3, 64, 64), ["score_pool4", "score_pool3", "score_fr"])
    assert acts["score_pool4"].shape[-2:] == (4, 4) and acts["score_pool3"].shape[-2:] == (8, 8)
    assert acts["score_fr"].shape[0] == 3
