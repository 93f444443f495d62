"""The numpy warp against the paper's formula written as loops, and the flow helpers."""

import numpy as np
import pytest

from segviewer.analysis.flow import endpoint_error, flow_magnitude, resize_flow, warp, warp_image, warp_loop
from segviewer.core.errors import SegviewerError


def test_warp_equals_the_formula_as_loops() -> None:
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(3, 7, 9))
    flow = rng.uniform(-3.0, 3.0, size=(7, 9, 2))  # many samples fall partly or wholly outside
    flow[0, 0] = (2.0, 1.0)  # an exact integer sample
    flow[1, 1] = (-1.5, 0.0)  # a half-cell sample
    got = warp(feats, flow)
    ref = warp_loop(feats, flow)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    assert np.abs(ref).max() > 0.5  # the reference is not trivially zero


def test_float32_features_keep_their_dtype_and_match_within_1e5() -> None:
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(2, 6, 5)).astype(np.float32)
    flow = rng.uniform(-2, 2, size=(6, 5, 2)).astype(np.float32)
    got = warp(feats, flow)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, warp_loop(feats, flow), atol=1e-5, rtol=0)


def test_integer_translation_shifts_exactly_away_from_borders() -> None:
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(4, 20, 24))
    dx, dy = 3, -2
    flow = np.zeros((20, 24, 2))
    flow[..., 0], flow[..., 1] = dx, dy
    got = warp(feats, flow)
    # f_i(y, x) = f_k(y + dy, x + dx) wherever that is inside the map, zero elsewhere
    np.testing.assert_array_equal(got[:, 2:, : 24 - dx], feats[:, : 20 - 2, dx:])
    assert np.all(got[:, :2, :] == 0) and np.all(got[:, :, 24 - dx :] == 0)


def test_scale_field_multiplies_and_two_dimensional_input() -> None:
    rng = np.random.default_rng(3)
    f = rng.normal(size=(5, 6))
    flow = rng.uniform(-1, 1, size=(5, 6, 2))
    s = rng.uniform(0.5, 2.0, size=(5, 6))
    np.testing.assert_allclose(warp(f, flow, s), warp_loop(f, flow)[0] * s, atol=1e-12)
    img = rng.integers(0, 255, size=(5, 6, 3)).astype(np.uint8)
    wi = warp_image(img, flow)
    assert wi.shape == (5, 6, 3) and wi.dtype == np.float32
    np.testing.assert_allclose(wi[..., 1], warp_loop(img[..., 1].astype(float), flow)[0], atol=1e-3)


def test_bad_shapes_raise_one_clear_error() -> None:
    with pytest.raises(SegviewerError, match="flow"):
        warp(np.zeros((2, 4, 4)), np.zeros((4, 5, 2)))
    with pytest.raises(SegviewerError):
        warp(np.zeros((4,)), np.zeros((4, 4, 2)))
    with pytest.raises(SegviewerError, match="NaN"):
        warp(np.zeros((4, 4)), np.full((4, 4, 2), np.nan))


def test_endpoint_error_and_magnitude() -> None:
    a = np.zeros((4, 4, 2))
    b = np.zeros((4, 4, 2))
    b[..., 0], b[..., 1] = 3.0, 4.0
    assert endpoint_error(a, b) == pytest.approx(5.0)
    valid = np.zeros((4, 4), bool)
    valid[0, 0] = True
    b[0, 0] = 0
    assert endpoint_error(a, b, valid) == 0.0
    assert flow_magnitude(b)[1, 1] == pytest.approx(5.0)


def test_resize_flow_divides_vectors_by_the_stride() -> None:
    flow = np.zeros((64, 96, 2), np.float32)
    flow[..., 0], flow[..., 1] = 16.0, -8.0
    small = resize_flow(flow, (8, 12))  # stride 8 on both axes
    assert small.shape == (8, 12, 2)
    np.testing.assert_allclose(small[..., 0], 2.0, atol=1e-6)
    np.testing.assert_allclose(small[..., 1], -1.0, atol=1e-6)
    aniso = resize_flow(flow, (16, 12))  # stride 4 in y, 8 in x
    np.testing.assert_allclose(aniso[..., 1], -2.0, atol=1e-6)
    # a translation warped at feature resolution moves features by the same number of cells
    feats = np.random.default_rng(0).normal(size=(1, 8, 12))
    moved = warp(feats, small)
    np.testing.assert_allclose(moved[0, 1:, :10], feats[0, :7, 2:], atol=1e-6)
