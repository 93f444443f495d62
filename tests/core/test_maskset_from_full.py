"""MaskSet.from_full: tight crops from full-frame masks of any width and dtype, read by words."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.core.results import MaskSet


@pytest.mark.parametrize("shape", [(3, 5, 7), (4, 9, 12), (2, 1, 1), (5, 17, 16), (3, 6, 10), (2, 30, 64)])
def test_crops_are_tight_and_give_the_masks_back(shape) -> None:
    rng = np.random.default_rng(sum(shape))
    m = rng.random(shape) < 0.05
    m[0] = False  # an empty mask
    m[-1, -1, -1] = True  # a pixel in the last word's last byte
    ms = MaskSet.from_full(m)
    assert np.array_equal(ms.to_full(), m)
    assert ms.crops[0].shape == (0, 0)
    for c in ms.crops[1:]:
        if c.size:  # every border row and column of a crop holds a mask pixel
            assert c[0].any() and c[-1].any() and c[:, 0].any() and c[:, -1].any()
    assert np.array_equal(MaskSet.from_full(m.astype(np.uint8) * 7).to_full(), m)  # non-zero is inside


def test_edge_pixels_inside_one_word_and_copies() -> None:
    m = np.zeros((2, 4, 24), bool)
    m[0, 1, 9] = m[0, 2, 14] = True  # both inside the second 8-byte word
    m[1, 3, 0] = True
    ms = MaskSet.from_full(m)
    assert ms.offsets.tolist() == [[9, 1], [0, 3]]
    assert [c.shape for c in ms.crops] == [(2, 6), (1, 1)]
    m[0, 1, 9] = False  # the crops are copies
    assert ms.crops[0][0, 0]
    assert len(MaskSet.from_full(np.zeros((0, 4, 4), bool))) == 0


def test_crop_boxes_are_each_crops_extent() -> None:
    full = np.zeros((2, 20, 30), bool)
    full[0, 3:7, 5:12] = True
    ms = MaskSet.from_full(full)
    boxes = ms.crop_boxes()
    assert boxes.dtype == np.float32 and boxes.shape == (2, 4)
    assert boxes[0].tolist() == [5, 3, 12, 7] and boxes[1].tolist() == [0, 0, 0, 0]  # empty mask: zeros
