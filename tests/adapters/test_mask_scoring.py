"""Mask Scoring R-CNN on the shapes Mask R-CNN: the MaskIoU head's shape, both scoring rules from
one pass (s_mask = s_cls x s_iou; the box rule is Mask R-CNN's own score), the predicted IoU
recomputed from the bundle's own FPN maps, boxes and mask logits, and the real-IoU analysis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segviewer.adapters.base import PredictParams
from segviewer.adapters.mask_scoring import MaskScoringInternals, ShapesMaskScoring
from segviewer.adapters.nets.maskiou import build_maskiou
from segviewer.adapters.registry import create_adapter, get_card, models_dir
from segviewer.adapters.shapes import ShapesMaskRCNN
from segviewer.analysis.mask_scoring import mask_iou_matrix, pearson, real_ious
from segviewer.core.errors import SegviewerError
from segviewer.training.data import VAL_SEED, shapes_instance

SEED = VAL_SEED + 700_000  # unseen: neither training nor the card's 200 scenes


@pytest.fixture(scope="module")
def adapter() -> ShapesMaskScoring:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    if (models_dir() / "shapes_msrcnn.toml").is_file():
        ad = create_adapter("shapes_msrcnn")
        ad.load("cpu")
    else:  # before the head ships: the bundled Mask R-CNN with an untrained head (same plumbing)
        ad = ShapesMaskScoring(get_card("shapes_maskrcnn"))
        ShapesMaskRCNN.load(ad, "cpu")
        torch.manual_seed(0)
        ad.head = build_maskiou().eval()
    yield ad
    torch.set_num_threads(n)


def test_head_follows_the_papers_layout() -> None:
    head = build_maskiou({"num_classes": 6, "in_channels": 128, "width": 16, "fc": 32})
    strides = [c.stride[0] for c in head.convs]
    assert strides == [1, 1, 1, 2] and head.convs[0].in_channels == 129  # features + the max-pooled mask
    assert [m.out_features for m in (head.fc1, head.fc2, head.fc3)] == [32, 32, 6]
    assert head.fc1.in_features == 16 * 7 * 7
    x, m = torch.randn(3, 128, 14, 14), torch.rand(3, 28, 28)
    out = head(x, m)
    assert out.shape == (3, 6)
    lab = torch.tensor([1, 4, 2])
    iou = head.predict_iou(x, m, lab)
    assert torch.equal(iou, out[torch.arange(3), lab].clamp(0, 1))


def test_mask_score_is_box_score_times_predicted_iou(adapter: ShapesMaskScoring) -> None:
    img = shapes_instance(SEED).image
    plain = ShapesMaskRCNN.predict(adapter, img)  # Mask R-CNN alone
    by_box = adapter.predict(img, PredictParams(extra=(("scoring", "box"),)))
    by_mask, ms = adapter.predict_scored(img)  # the default: Mask Scoring
    assert len(plain.scores) > 0
    np.testing.assert_array_equal(by_box.scores, plain.scores)
    np.testing.assert_array_equal(ms.box_scores, plain.scores)
    np.testing.assert_array_equal(by_mask.scores, (plain.scores * ms.mask_iou).astype(np.float32))
    np.testing.assert_array_equal(by_mask.class_ids, plain.class_ids)  # same detections, same order
    np.testing.assert_array_equal(by_mask.masks.to_full(), plain.masks.to_full())
    assert np.all((ms.mask_iou >= 0) & (ms.mask_iou <= 1))
    with pytest.raises(SegviewerError):
        adapter.predict(img, PredictParams(extra=(("scoring", "cls"),)))


def test_one_pass_and_predicted_iou_from_the_bundle(adapter: ShapesMaskScoring) -> None:
    from segviewer.adapters.one_pass import predict_with_internals

    img = shapes_instance(SEED + 1).image
    model = adapter.module
    passes = []
    h = model.backbone.register_forward_pre_hook(lambda *_: passes.append(1))
    try:
        det, it = predict_with_internals(adapter, img, PredictParams())
    finally:
        h.remove()
    assert passes == [1]
    assert isinstance(it, MaskScoringInternals) and "mask_scoring" in it.kinds and "roi" in it.kinds
    assert it.replay_matches
    ms = it.mask_scoring
    np.testing.assert_array_equal(det.scores, ms.mask_scores)
    np.testing.assert_array_equal(ms.box_scores, it.detections.scores)
    # the MaskIoU head again, on RoI features pooled from the bundle's own FPN maps and boxes
    feats = {k: torch.from_numpy(v)[None] for k, v in it.features.items()}
    boxes = torch.from_numpy(it.detections.boxes)
    with torch.inference_mode():
        pooled = model.roi_heads.mask_roi_pool(feats, [boxes], [it.model_size])
        labels = torch.from_numpy(it.detections.groups)
        iou = adapter.head.predict_iou(pooled, torch.sigmoid(torch.from_numpy(it.mask_logits)), labels)
    np.testing.assert_allclose(iou.numpy(), ms.mask_iou, atol=1e-5)


def test_real_ious_match_a_plain_loop() -> None:
    rng = np.random.default_rng(0)
    pred = rng.random((5, 20, 20)) > 0.6
    gt = rng.random((4, 20, 20)) > 0.6
    pl, gl = np.array([1, 2, 3, 1, 5]), np.array([1, 1, 2, 3])
    want = []
    for i in range(5):
        best = 0.0
        for j in range(4):
            if pl[i] == gl[j]:
                inter, union = (pred[i] & gt[j]).sum(), (pred[i] | gt[j]).sum()
                best = max(best, inter / union)
            assert mask_iou_matrix(pred, gt)[i, j] == pytest.approx((pred[i] & gt[j]).sum() / (pred[i] | gt[j]).sum())
        want.append(best)
    np.testing.assert_allclose(real_ious(pl, pred, gl, gt), want, rtol=1e-6)
    assert real_ious(pl, pred, gl[:0], gt[:0]).tolist() == [0.0] * 5


def test_pearson_equals_numpy() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.random(50), rng.random(50)
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert np.isnan(pearson(np.ones(5), y[:5]))
    with pytest.raises(ValueError):
        pearson(x, y[:3])


def _card_or_skip():  # noqa: ANN202
    if not (models_dir() / "shapes_msrcnn.toml").is_file():
        pytest.skip("shapes_msrcnn is not shipped")
    return get_card("shapes_msrcnn")


def test_card_pairs_the_mask_rcnn_with_a_small_head() -> None:
    import hashlib

    import tomllib

    card = _card_or_skip()
    data = tomllib.loads((models_dir() / "shapes_msrcnn.toml").read_text(encoding="utf-8"))
    head = models_dir() / data["maskiou_checkpoint"]
    assert hashlib.sha256(head.read_bytes()).hexdigest() == data["maskiou_sha256"]
    assert head.stat().st_size <= 15 * 2**20
    assert card.sha256 == get_card("shapes_maskrcnn").sha256  # the same frozen Mask R-CNN
    assert "maskiou_task" in card.extra["training"]["command"]
    for k in ("mask_ap_box_score", "mask_ap_mask_score", "pearson_box_score_real_iou", "pearson_mask_score_real_iou"):
        assert k in card.metrics


@pytest.mark.slow
def test_metrics_close_to_the_card(adapter: ShapesMaskScoring) -> None:
    from segviewer.training.maskiou_task import evaluate_scoring

    card = _card_or_skip()
    got = evaluate_scoring(adapter, 20, offset=500_000)  # neither training nor the card's scenes
    for k, margin in (("mask_ap_box_score", 0.08), ("mask_ap_mask_score", 0.08),
                      ("pearson_mask_score_real_iou", 0.1), ("pearson_pred_iou_real_iou", 0.1)):
        assert got[k] >= card.metrics[k] - margin, f"{k}: {got[k]:.3f} vs card {card.metrics[k]:.3f}"
