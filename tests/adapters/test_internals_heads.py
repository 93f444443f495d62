"""The mask head's every class channel and Keypoint R-CNN's keypoint maps, captured in the ONE
hooked pass that gives the layers' result: the shapes Mask R-CNN (float32, six channels), a
random-init COCO-shaped Mask R-CNN (91 channels kept as float16 to bound the bundle), and a
random-init Keypoint R-CNN whose keypoints are recomputed from the captured maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segviewer.adapters.base import PredictParams
from segviewer.adapters.internals import HEAD_BYTES, DetectorInternals
from segviewer.adapters.one_pass import capture_kinds, internals_nbytes, predict_with_internals
from segviewer.adapters.registry import create_adapter
from segviewer.analysis.mask_head import heatmaps_to_keypoints
from tests.adapters.test_internals_predict import _count_passes, _scene

SMALL = PredictParams(min_score=0.0, max_detections=100, extra=(("min_size", 128), ("max_size", 160)))


def test_shapes_maskrcnn_keeps_every_class_channel() -> None:
    adapter = create_adapter("shapes_maskrcnn")
    adapter.load("cpu")
    passes = _count_passes(adapter)
    result, it = predict_with_internals(adapter, _scene(), PredictParams(min_score=0.2))
    assert passes[0] == 1 and isinstance(it, DetectorInternals) and len(result) > 0
    n, c = len(it.detections), len(adapter.card.categories)
    assert it.mask_logits_all.shape == (n, c, 28, 28) and it.mask_logits_all.dtype == np.float32
    own = it.mask_logits_all[np.arange(n), it.detections.groups]
    np.testing.assert_array_equal(own, it.mask_logits)  # the channel the model's mask came from
    assert it.kinds == ("roi", "rpn", "mask_logits") and set(it.kinds) <= set(capture_kinds(adapter))
    assert it.keypoint_logits is None
    assert internals_nbytes(it) >= it.mask_logits_all.nbytes + it.mask_logits.nbytes


@pytest.mark.slow
def test_coco_shaped_mask_rcnn_keeps_91_channels_as_float16() -> None:
    torch.manual_seed(3)
    adapter = create_adapter("maskrcnn_resnet50_fpn", random_init=True)
    adapter.load("cpu")
    result, it = predict_with_internals(adapter, _scene(), SMALL)
    n = len(it.detections)
    assert n == len(result) > 20  # enough detections for float32 to pass the budget
    all_ = it.mask_logits_all
    assert all_.shape == (n, 91, 28, 28)
    assert all_.dtype == np.float16 and n * 91 * 28 * 28 * 4 > HEAD_BYTES
    assert all_.nbytes == n * 91 * 28 * 28 * 2 <= 16 << 20
    own = all_[np.arange(n), it.detections.groups].astype(np.float32)
    np.testing.assert_allclose(own, it.mask_logits, rtol=1e-3, atol=1e-3)  # float16's precision


@pytest.mark.slow
def test_keypoint_rcnn_heatmaps_give_its_keypoints() -> None:
    torch.manual_seed(0)
    adapter = create_adapter("keypointrcnn_resnet50_fpn", random_init=True)
    adapter.load("cpu")
    passes = _count_passes(adapter)
    img = _scene()
    params = PredictParams(min_score=0.0, max_detections=6, extra=(("min_size", 128), ("max_size", 160)))
    result, it = predict_with_internals(adapter, img, params)
    assert passes[0] == 1 and len(result) == len(it.detections) > 0
    assert "keypoint_heatmaps" in it.kinds and "mask_logits" not in it.kinds
    assert set(it.kinds) <= set(capture_kinds(adapter))
    k = len(adapter.card.keypoint_names)
    assert it.keypoint_logits.shape == (len(result), k, 56, 56)
    assert it.keypoint_names == adapter.card.keypoint_names
    for i in range(len(result)):
        xy, score = heatmaps_to_keypoints(it.keypoint_logits[i], it.detections.boxes[i])
        np.testing.assert_allclose(xy, it.keypoints[i, :, :2], atol=1e-3)
        np.testing.assert_allclose(score, it.keypoints[i, :, 2], atol=1e-4)
        on_image = it.to_image(np.concatenate([xy, xy], 1))[:, :2]
        np.testing.assert_allclose(on_image, result.keypoints[i, :, :2], rtol=1e-5, atol=1e-2)
        np.testing.assert_allclose(score, result.keypoints[i, :, 2], atol=1e-4)
