"""One-stage dense heads (RetinaNet, FCOS, SSD) from ONE pass, checked against torchvision."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from torchvision.models.detection.image_list import ImageList  # noqa: E402
from torchvision.ops import batched_nms, sigmoid_focal_loss  # noqa: E402

from segviewer.adapters.base import PredictParams  # noqa: E402
from segviewer.adapters.internals_dense import DenseInternals  # noqa: E402
from segviewer.adapters.one_pass import capture_kinds, predict_with_internals  # noqa: E402
from segviewer.adapters.registry import create_adapter  # noqa: E402
from segviewer.analysis import anchors as anchor_math  # noqa: E402
from segviewer.analysis import dense, focal  # noqa: E402

MODELS = ("retinanet_resnet50_fpn", "fcos_resnet50_fpn", "ssdlite320_mobilenet_v3_large")
PARAMS = PredictParams(min_score=0.0, extra=(("min_size", 224), ("max_size", 320)))


def _image() -> np.ndarray:
    rng = np.random.default_rng(3)
    img = (rng.random((200, 280, 3)) * 60).astype(np.uint8)
    img[50:150, 80:200] = (220, 40, 40)
    return img


@pytest.fixture(scope="module", params=MODELS)
def captured(request: pytest.FixtureRequest) -> tuple:
    torch.manual_seed(0)
    adapter = create_adapter(request.param, random_init=True)
    adapter.load("cpu")
    calls = []
    h = adapter.module.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        result, it = predict_with_internals(adapter, _image(), PARAMS)
    finally:
        h.remove()
    return adapter, result, it, len(calls)


def test_one_pass_and_replay_matches_the_model(captured: tuple) -> None:
    adapter, result, it, calls = captured
    assert calls == 1  # hooks, never a second run
    assert isinstance(it, DenseInternals), getattr(it, "message", it)
    assert set(it.kinds) <= set(capture_kinds(adapter)) and "dense_levels" in capture_kinds(adapter)
    assert it.replay_matches
    # what the layers show (input-image pixels) is the replay's output mapped back
    np.testing.assert_allclose(it.to_image(it.detections.boxes), result.boxes, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(it.detections.scores, result.scores)


def test_kept_set_equals_batched_nms_and_the_stepper(captured: tuple) -> None:
    _, _, it, _ = captured
    c = it.candidates
    ref = batched_nms(torch.from_numpy(c.boxes), torch.from_numpy(c.scores), torch.from_numpy(c.groups),
                      it.nms_thresh).numpy()
    np.testing.assert_array_equal(c.boxes[ref[: it.detections_per_img]], it.detections.boxes)
    cls = int(it.detections.groups[0])
    trace = it.nms(cls)
    mine = np.sort(trace.ids[trace.keep])
    theirs = np.sort(ref[c.groups[ref] == cls])
    np.testing.assert_array_equal(mine, theirs)


def _generator_output(adapter: object, it: DenseInternals) -> np.ndarray:
    """The model's anchor generator run afresh on empty maps of the captured sizes."""
    m = adapter.module
    images = ImageList(torch.zeros(1, 3, *it.padded_size), [it.model_size])
    feats = [torch.zeros(1, 1, h, w) for h, w in it.grids]
    with torch.no_grad():
        return m.anchor_generator(images, feats)[0].numpy()


def test_anchors_at_a_click_equal_the_generators(captured: tuple) -> None:
    adapter, _, it, _ = captured
    gen = _generator_output(adapter, it)
    for level in range(len(it.grids)):
        at = it.anchors_at(150.0, 90.0, level)
        assert len(at.boxes) == it.per_location[level]
        np.testing.assert_array_equal(at.boxes, gen[at.flat_index])
        if it.kind != "ssd":  # the Faster R-CNN anchor maths, shared with the RPN tab
            g = adapter.module.anchor_generator
            ref = anchor_math.anchors_at(*it.to_model(150.0, 90.0), level, it.grids, it.padded_size,
                                         g.sizes, g.aspect_ratios)
            np.testing.assert_array_equal(ref.flat_index, at.flat_index)
            np.testing.assert_array_equal(ref.boxes, at.boxes)
        else:  # the clicked point lies in the default boxes' cell
            sy, sx = it.stride(level)
            cx, cy = (at.boxes[0, 0] + at.boxes[0, 2]) / 2, (at.boxes[0, 1] + at.boxes[0, 3]) / 2
            mx, my = it.to_model(150.0, 90.0)
            assert abs(cx - mx) <= sx / 2 + 1e-3 and abs(cy - my) <= sy / 2 + 1e-3


def test_decoded_box_equals_the_box_coder(captured: tuple) -> None:
    adapter, _, it, _ = captured
    m = adapter.module
    src = it.candidates.source[:50]
    reg, anc = torch.from_numpy(it.bbox_regression[src]), torch.from_numpy(it.anchors[src])
    ref = m.box_coder.decode(reg, anc) if it.kind == "fcos" else m.box_coder.decode_single(reg, anc)
    np.testing.assert_allclose(it.decode(src), ref.numpy(), rtol=1e-5, atol=1e-3)
    clipped = np.clip(it.decode(src), 0, [it.model_size[1], it.model_size[0]] * 2)
    np.testing.assert_allclose(clipped, it.candidates.boxes[:50], rtol=1e-5, atol=1e-3)


def test_level_counts_and_score_maps(captured: tuple) -> None:
    _, _, it, _ = captured
    counts = it.level_counts()
    assert len(counts) == len(it.grids)
    if it.kind != "ssd":
        per_level = np.bincount(it.candidate_levels, minlength=len(it.grids))
        assert [c.kept for c in counts] == per_level.tolist()
    assert sum(c.kept for c in counts) == len(it.candidates)
    s = it.scores()
    for level, sl in enumerate(it.level_slices()):
        m = it.score_map(level)
        assert m.shape == it.grids[level]
        assert np.isclose(m.max(), s[sl, it.foreground:].max())


def test_fcos_centerness_and_ltrb(captured: tuple) -> None:
    _, _, it, _ = captured
    if it.kind != "fcos":
        pytest.skip("FCOS only")
    at = it.anchors_at(150.0, 90.0, 1)
    i = int(at.flat_index[0])
    left, t, r, b = it.ltrb(i)
    cx, cy = (it.anchors[i, 0] + it.anchors[i, 2]) / 2, (it.anchors[i, 1] + it.anchors[i, 3]) / 2
    np.testing.assert_allclose(it.decode(i)[0], [cx - left, cy - t, cx + r, cy + b], rtol=1e-5, atol=1e-3)
    cm = it.centerness_map(1)
    assert np.isclose(cm[at.row, at.col], 1 / (1 + np.exp(-it.ctrness[i])))
    # scores are sqrt(sigmoid(cls) * sigmoid(ctr)) as torchvision's postprocess
    np.testing.assert_allclose(it.scores()[i], np.sqrt(dense.sigmoid(it.cls_logits[i]) * cm[at.row, at.col]),
                               rtol=1e-6)


def test_centerness_formula() -> None:
    d = np.array([[10, 20, 30, 5], [4, 4, 4, 4], [-1, 3, 3, 3]], np.float64)
    want = [np.sqrt(10 / 30 * 5 / 20), 1.0, 0.0]
    np.testing.assert_allclose(dense.centerness(d), want)
    pts = np.array([[15.0, 25.0]])
    np.testing.assert_allclose(dense.ltrb_targets(pts, [5, 5, 45, 30]), [[10, 20, 30, 5]])


def test_focal_terms_equal_torchvision() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (400, 5)).astype(np.float32)
    t = (rng.random((400, 5)) < 0.05).astype(np.float32)
    for gamma, alpha in ((2.0, 0.25), (0.0, -1.0), (5.0, 0.75), (0.5, 0.5)):
        ref = sigmoid_focal_loss(torch.from_numpy(x).double(), torch.from_numpy(t).double(), alpha, gamma, "none")
        np.testing.assert_allclose(focal.focal_terms(x, t, gamma, alpha)["fl"], ref.numpy(), rtol=1e-10, atol=1e-12)
        ref32 = sigmoid_focal_loss(torch.from_numpy(x), torch.from_numpy(t), alpha, gamma, "none").numpy()
        np.testing.assert_allclose(focal.focal_terms(x, t, gamma, alpha)["fl"], ref32, rtol=1e-4, atol=1e-6)
    terms = focal.focal_terms(x, t, 0.0, -1.0)
    np.testing.assert_allclose(terms["fl"], terms["ce"])


def test_assignment_equals_torchvision_matcher() -> None:
    from torchvision.models.detection._utils import Matcher
    from torchvision.ops import box_iou

    base = anchor_math.cell_anchors((32, 40, 50), (0.5, 1.0, 2.0))
    anchors = anchor_math.grid_anchors((12, 16), (8, 8), base)
    gt = np.array([[20, 30, 70, 90], [60, 10, 120, 50], [100, 60, 104, 64]], np.float32)
    ref = Matcher(0.5, 0.4, allow_low_quality_matches=True)(box_iou(torch.from_numpy(gt), torch.from_numpy(anchors)))
    got = focal.assign_anchors(anchors, gt)
    np.testing.assert_array_equal(got, ref.numpy())
    assert (got >= 0).any() and (got == focal.BETWEEN).any() and (got == focal.BELOW_LOW).any()


def test_fcos_assignment_equals_torchvision(captured: tuple) -> None:
    """FCOS's centre-sampling rule on the captured pass's real anchors equals the matched indices
    torchvision's ``FCOS.compute_loss`` hands its head (caught there), and its focal loss too."""
    adapter, _, it, _ = captured
    if it.kind != "fcos":
        pytest.skip("FCOS's assignment")
    gt = np.array([[30, 40, 170, 150], [60, 60, 100, 90], [10, 10, 26, 30]], np.float32)  # model frame
    anchors = torch.from_numpy(it.anchors)
    per_level = [s.stop - s.start for s in it.level_slices()]
    seen = {}

    def grab(targets, head_outputs, anchors, matched_idxs):  # noqa: ANN001, ANN202
        seen["m"] = matched_idxs[0].numpy()
        return {}

    fcos = adapter.module
    fcos.head.compute_loss = grab
    try:
        fcos.compute_loss([{"boxes": torch.from_numpy(gt), "labels": torch.tensor([1, 2, 3])}], {}, [anchors], per_level)
    finally:
        del fcos.head.compute_loss
    got = focal.assign_fcos(it.anchors, gt, per_level)
    np.testing.assert_array_equal(got, seen["m"])
    assert len(set(got[got >= 0].tolist())) == 3 and (got == focal.BELOW_LOW).any()
    tgt = focal.one_hot_targets(got, np.array([1, 2, 3]), it.cls_logits.shape[1])
    fl = focal.loss_shares(it.cls_logits, tgt, None, gamma=2.0, alpha=0.25)
    ref = sigmoid_focal_loss(torch.from_numpy(it.cls_logits), torch.from_numpy(tgt), 0.25, 2.0, "sum")
    assert np.isclose(fl.fl_total, float(ref), rtol=1e-4)


def test_easy_negatives_dominate_ce_not_fl(captured: tuple) -> None:
    """The paper's claim on a real pass: with RetinaNet's prior (p ~ 0.01) the easy negatives carry
    most of the CE total, and focal loss removes that share; sums equal torchvision's."""
    _, _, it, _ = captured
    if it.kind != "retinanet":
        pytest.skip("RetinaNet's assignment")
    gt = np.array([[40, 40, 160, 140]], np.float32)
    m = focal.assign_anchors(it.anchors, gt)
    tgt = focal.one_hot_targets(m, np.array([1]), it.cls_logits.shape[1])
    valid = m != focal.BETWEEN
    ce = focal.loss_shares(it.cls_logits, tgt, valid, gamma=0.0, alpha=-1.0)
    fl = focal.loss_shares(it.cls_logits, tgt, valid, gamma=2.0, alpha=0.25)
    assert ce.ce_easy_neg > 0.9 and fl.fl_easy_neg < ce.ce_easy_neg
    ref = sigmoid_focal_loss(torch.from_numpy(it.cls_logits[valid]), torch.from_numpy(tgt[valid]), 0.25, 2.0, "sum")
    assert np.isclose(fl.fl_total, float(ref), rtol=1e-4)


def test_focal_image_equals_loss_shares() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(-3, 2, (300, 4))
    t = (rng.random((300, 4)) < 0.03).astype(np.float32)
    valid = rng.random(300) > 0.1
    fi = focal.FocalImage(x, t, valid)
    for gamma, alpha in ((0.0, -1.0), (2.0, 0.25), (4.5, 0.6)):
        a, b = fi.shares(gamma, alpha), focal.loss_shares(x, t, valid, gamma, alpha)
        assert np.isclose(a.fl_total, b.fl_total) and np.isclose(a.fl_easy_neg, b.fl_easy_neg)
        assert np.isclose(a.ce_easy_neg, b.ce_easy_neg) and a.n_easy_neg == b.n_easy_neg
    # more focusing, less of the loss from easy negatives
    assert fi.shares(5.0, -1.0).fl_easy_neg < fi.shares(1.0, -1.0).fl_easy_neg < fi.shares(0.0, -1.0).fl_easy_neg


def test_ground_truth_boxes_from_instances_and_panoptic() -> None:
    from segviewer.core.results import Detections, PanopticMap, PanopticSegment

    det = Detections((50, 60), np.array([[1, 2, 30, 40]], np.float32), np.ones(1, np.float32),
                     np.array([1], np.int32), ("cat", "Person"))
    boxes, labels, unmatched = focal.ground_truth_boxes(det, ("__background__", "person"))
    np.testing.assert_array_equal(boxes, [[1, 2, 30, 40]])
    assert labels.tolist() == [1] and unmatched == 0
    ids = np.zeros((20, 30), np.int32)
    ids[3:8, 4:10] = 5
    ids[10:, :] = 6
    pan = PanopticMap(ids, (PanopticSegment(5, 0, True, 30), PanopticSegment(6, 1, False, 300)), ("dog", "sky"))
    boxes, labels, unmatched = focal.ground_truth_boxes(pan, ("person",))
    np.testing.assert_array_equal(boxes, [[4, 3, 10, 8]])
    assert labels.tolist() == [0] and unmatched == 1


def test_render_arrows_and_assignment() -> None:
    from segviewer.render.dense import ASSIGNMENT_COLORS, assignment_rgba, location_codes, ltrb_arrow_segments

    seg = ltrb_arrow_segments((50.0, 40.0), np.array([10.0, 5.0, 20.0, 15.0]))
    shafts = seg[::3]
    np.testing.assert_allclose(shafts[:, 1], [[40, 40], [50, 35], [70, 40], [50, 55]])  # the box's sides
    m = np.array([-1, -1, 0, -2, -1, -1, -2, -1], np.int64)  # 2 x 2 locations x 2 anchors
    codes = location_codes(m, (2, 2), 2)
    assert codes.tolist() == [[0, 2], [0, 1]]
    rgba = assignment_rgba(codes, (4, 4))
    assert tuple(rgba[0, 3]) == ASSIGNMENT_COLORS[2] and tuple(rgba[3, 3]) == ASSIGNMENT_COLORS[1]
    assert tuple(rgba[3, 0]) == ASSIGNMENT_COLORS[0]
