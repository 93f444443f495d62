"""YOLACT's assembly in numpy equals torch's operators on the same numbers: the linear
combination is a tensor contraction, the crop's bilinear sampling is ``F.interpolate``'s
(align_corners=False) at the input pixels' centres, and the crop keeps exactly the pixels whose
centres lie in the box."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segviewer.analysis import yolact as A


def _rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_linear_and_sigmoid_equal_torch() -> None:
    rng = _rng()
    proto = rng.random((8, 12, 10), dtype=np.float32)
    coef = rng.uniform(-1, 1, (3, 8)).astype(np.float32)
    got = A.linear(proto, coef)
    want = torch.einsum("nk,khw->nhw", torch.from_numpy(coef), torch.from_numpy(proto))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(A.sigmoid(got), torch.sigmoid(want).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stride", [4, 2])
def test_sampling_the_whole_frame_is_interpolate(stride: int) -> None:
    rng = _rng()
    prob = rng.random((9, 7), dtype=np.float32)
    h, w = 9 * stride, 7 * stride
    got = A.sample(prob, 0, 0, w, h, (1.0, 1.0), stride)
    want = F.interpolate(torch.from_numpy(prob)[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_sampling_a_resized_input_is_interpolate_to_its_size() -> None:
    """An input twice the model frame (scale 2): its pixels sample the prototypes where
    interpolating straight to the input's size would."""
    rng = _rng()
    prob = rng.random((8, 8), dtype=np.float32)  # stride 4 of a 32x32 model frame
    got = A.sample(prob, 0, 0, 64, 64, (2.0, 2.0), 4)
    want = F.interpolate(torch.from_numpy(prob)[None, None], size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_box_pixels_keep_the_centres_inside() -> None:
    box = np.array([2.4, 3.6, 7.5, 9.0], np.float32)
    x0, y0, x1, y1 = A.box_pixels(box, (20, 20))
    xs = np.arange(20) + 0.5
    inside_x = np.flatnonzero((xs >= box[0]) & (xs <= box[2]))
    inside_y = np.flatnonzero((xs >= box[1]) & (xs <= box[3]))
    assert (x0, x1) == (inside_x[0], inside_x[-1] + 1)
    assert (y0, y1) == (inside_y[0], inside_y[-1] + 1)
    assert A.box_pixels(np.array([-5, -5, 30, 30], np.float32), (20, 10)) == (0, 0, 10, 20)
    x0, _, x1, _ = A.box_pixels(np.array([3.1, 0, 3.4, 5], np.float32), (20, 20))
    assert x1 <= x0  # no pixel centre in a sliver: an empty crop


def test_assemble_equals_the_steps_of_each_detection() -> None:
    rng = _rng()
    proto = rng.random((6, 16, 16), dtype=np.float32) * 3
    coef = rng.uniform(-1, 1, (4, 6)).astype(np.float32)
    boxes = np.array([[0, 0, 64, 64], [10.2, 5.5, 40.7, 30.1], [50, 50, 50.2, 50.2], [-4, 20, 80, 63]], np.float32)
    crops, offsets = A.assemble(proto, coef, boxes, (64, 64), (1.0, 1.0), 4)
    for i in range(4):
        one = A.assemble_one(proto, coef[i], boxes[i], (64, 64), (1.0, 1.0), 4)
        assert np.array_equal(one.mask, crops[i])
        if one.mask.size:
            assert tuple(offsets[i]) == one.offset
        np.testing.assert_array_equal(one.mask, one.crop >= 0.5)
    full = F.interpolate(torch.sigmoid(torch.einsum("k,khw->hw", torch.from_numpy(coef[1]), torch.from_numpy(proto)))[None, None],
                         size=(64, 64), mode="bilinear", align_corners=False)[0, 0].numpy()
    x0, y0 = offsets[1]
    h, w = crops[1].shape
    np.testing.assert_array_equal(crops[1], full[y0:y0 + h, x0:x0 + w] >= 0.5)


def test_coefficients_follow_the_prior_major_layout() -> None:
    k, nb = 3, 2
    cmap = np.arange(nb * k * 4 * 5, dtype=np.float32).reshape(nb * k, 4, 5)
    got = A.coefficients(cmap, np.array([[1, 2], [3, 4]]), np.array([1, 0]), k)
    np.testing.assert_array_equal(got[0], cmap[k:2 * k, 1, 2])
    np.testing.assert_array_equal(got[1], cmap[0:k, 3, 4])
