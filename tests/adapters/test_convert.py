"""The shared torch->numpy helpers against torchvision's own (full-frame) functions and float64 references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import paste_masks_in_image

from segviewer.adapters._convert import cap_probs, check_image, labels_from_logits, paste_masks_compact
from segviewer.core.errors import SegviewerError


def test_paste_masks_compact_equals_torchvision_paste_then_threshold() -> None:
    g = torch.Generator().manual_seed(1)
    h, w = 57, 83
    n = 12
    probs = torch.rand(n, 1, 28, 28, generator=g)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w + 20.0, h + 20.0]) - 10  # some leave the image
    wh = torch.rand(n, 2, generator=g) * 40 + 0.3
    boxes = torch.cat([xy, xy + wh], dim=1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)  # the detectors clip boxes to the image before pasting
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    boxes[0] = torch.tensor([5.0, 5.0, 5.2, 5.1])  # sub-pixel box
    boxes[1] = torch.tensor([w - 0.5, 3.0, w, 30.0])  # a sliver on the right edge
    ref = paste_masks_in_image(probs, boxes, (h, w))[:, 0] > 0.5
    got = paste_masks_compact(probs, boxes, (h, w))
    assert len(got) == n and got.image_size == (h, w)
    assert np.array_equal(got.to_full(), ref.numpy())
    assert int(ref.sum()) > 500 and sum(int(m.any()) for m in ref) >= n // 2  # not a vacuous comparison
    outside = paste_masks_compact(probs[:1], torch.tensor([[200.0, 200.0, 210.0, 220.0]]), (h, w))
    assert outside.crops[0].shape == (0, 0)  # (torchvision's own paste raises here)
    # memory is bounded by the box areas, not N full frames
    assert sum(c.size for c in got.crops) < n * h * w / 2


def test_paste_masks_compact_empty() -> None:
    got = paste_masks_compact(torch.zeros(0, 1, 28, 28), torch.zeros(0, 4), (10, 20))
    assert len(got) == 0 and got.to_full().shape == (0, 10, 20)


@pytest.mark.parametrize("size", [(50, 70), (13, 9), (12, 16)])
def test_labels_from_logits_match_float64_bilinear_argmax(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(7, 12, 16)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(logits).double()[None], size=size, mode="bilinear",
                        align_corners=False)[0].argmax(0).numpy()
    got = labels_from_logits(logits, size)
    assert got.shape == size and got.dtype == np.uint8
    assert np.mean(got == ref) > 0.995  # only float32 near-ties may differ


def test_cap_probs_keeps_small_and_shrinks_large_with_area_average() -> None:
    p = np.random.default_rng(0).random((3, 40, 30)).astype(np.float32)
    assert np.array_equal(cap_probs(p, 64), p)
    big = np.repeat(np.repeat(p, 20, axis=1), 20, axis=2)  # (3, 800, 600)
    small = cap_probs(big, 400)
    assert small.shape == (3, 400, 300)
    assert np.allclose(small, np.repeat(np.repeat(p, 10, axis=1), 10, axis=2), atol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 np.zeros((4, 4, 4), np.uint8), np.zeros((0, 4, 3), np.uint8)])
def test_check_image_refuses_non_rgb_uint8(bad: np.ndarray) -> None:
    with pytest.raises(SegviewerError, match="RGB uint8"):
        check_image(bad)
