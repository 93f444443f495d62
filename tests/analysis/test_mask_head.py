"""The mask head's choices in numpy equal torch on the same logits: per-class sigmoid, softmax
across the foreground classes, the spatial softmax of keypoint maps, and torchvision's
``heatmaps_to_keypoints`` (bicubic resize to the box, argmax, score)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import heatmaps_to_keypoints as tv_heatmaps_to_keypoints

from segviewer.analysis.mask_head import (
    bicubic_resize,
    heatmaps_to_keypoints,
    mask_head_choices,
    sigmoid,
    softmax,
    spatial_softmax,
)
from segviewer.core.errors import SegviewerError


def _logits(shape: tuple[int, ...], seed: int = 0, scale: float = 4.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


def test_sigmoid_and_softmax_equal_torch_even_when_saturated() -> None:
    lg = _logits((6, 28, 28))
    lg[1, 0, 0], lg[2, 0, 0] = 200.0, -200.0  # exp overflows a naive float32 formula
    t = torch.from_numpy(lg)
    np.testing.assert_allclose(sigmoid(lg), torch.sigmoid(t).numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(softmax(lg, 0), torch.softmax(t, 0).numpy(), rtol=1e-5, atol=1e-7)
    assert np.isfinite(softmax(lg, 0)).all()


def test_mask_head_choices_match_torch_and_the_predicted_channel() -> None:
    lg = _logits((6, 28, 28), seed=1)
    ch = mask_head_choices(lg, predicted=3)
    t = torch.from_numpy(lg)
    np.testing.assert_allclose(ch.sigmoid, torch.sigmoid(t).numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ch.softmax[1:], torch.softmax(t[1:], 0).numpy(), rtol=1e-5, atol=1e-7)
    assert (ch.softmax[0] == 0).all()  # torchvision's background channel never has a mask target
    np.testing.assert_allclose(ch.softmax[1:].sum(0), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(ch.sigmoid_mask, torch.sigmoid(t[3]).numpy() > 0.5)
    np.testing.assert_array_equal(ch.softmax_mask, torch.softmax(t[1:], 0)[2].numpy() > 0.5)
    # with competition, a cell can only be this class's when its logit is the largest there
    assert not (ch.softmax_mask & (ch.winners() != 3)).any()
    a, b = ch.sigmoid_mask, ch.softmax_mask
    assert ch.iou() == pytest.approx((a & b).sum() / (a | b).sum())
    assert ch.other_class_cells() == int((a & (np.argmax(lg[1:], 0) + 1 != 3)).sum())


def test_mask_head_choices_refuse_bad_input() -> None:
    with pytest.raises(SegviewerError, match="foreground"):
        mask_head_choices(_logits((4, 28, 28)), predicted=0)
    with pytest.raises(SegviewerError, match="classes, M, M"):
        mask_head_choices(_logits((28, 28)), predicted=1)


def test_spatial_softmax_equals_torch_over_the_cells() -> None:
    lg = _logits((17, 56, 56), seed=2)
    want = torch.softmax(torch.from_numpy(lg).flatten(1), 1).reshape(lg.shape).numpy()
    np.testing.assert_allclose(spatial_softmax(lg), want, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("size", [(37, 91), (120, 45), (5, 3), (56, 56)])
def test_bicubic_resize_equals_torch_interpolate(size: tuple[int, int]) -> None:
    lg = _logits((3, 56, 56), seed=3)
    want = F.interpolate(torch.from_numpy(lg)[:, None], size=size, mode="bicubic", align_corners=False)[:, 0]
    np.testing.assert_allclose(bicubic_resize(lg, size), want.numpy(), atol=2e-4)


def test_heatmaps_to_keypoints_equals_torchvision() -> None:
    rng = np.random.default_rng(4)
    for i in range(20):
        x0, y0 = rng.uniform(0, 300, 2)
        box = np.array([x0, y0, x0 + rng.uniform(0.5, 200), y0 + rng.uniform(0.5, 200)], np.float32)
        lg = _logits((17, 56, 56), seed=10 + i, scale=3.0)
        xy, score = heatmaps_to_keypoints(lg, box)
        want, want_score = tv_heatmaps_to_keypoints(torch.from_numpy(lg)[None], torch.from_numpy(box)[None])
        np.testing.assert_allclose(xy, want[0, :, :2].numpy(), atol=1e-4)
        np.testing.assert_allclose(score, want_score[0].numpy(), atol=1e-4)
