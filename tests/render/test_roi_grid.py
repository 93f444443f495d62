"""Segments for grids/boxes/points and their rasterisation."""

import numpy as np
import pytest

from segviewer.analysis.roi_align import roi_align_grid, roi_pool_grid
from segviewer.core.errors import SegviewerError
from segviewer.render.roi_grid import (
    box_segments,
    cross_segments,
    grid_segments,
    rasterize_points,
    rasterize_segments,
    roi_align_segments,
    roi_pool_segments,
    scale_segments,
    to_pairs,
)


def test_box_segments_are_four_closed_edges() -> None:
    s = box_segments(np.array([[1, 2, 5, 7], [0, 0, 3, 3]]))
    assert s.shape == (8, 2, 2) and s.dtype == np.float32
    for b in range(2):
        e = s[4 * b: 4 * b + 4]
        np.testing.assert_array_equal(e[:, 1], np.roll(e[:, 0], -1, axis=0))  # each edge ends where the next starts
    np.testing.assert_array_equal(s[0], [[1, 2], [5, 2]])
    assert box_segments(np.zeros((0, 4))).shape == (0, 2, 2)


def test_grid_segments_and_pairs() -> None:
    s = grid_segments([0, 1, 2], [0, 5])
    assert s.shape == (5, 2, 2)
    x, y = to_pairs(s)
    assert x.shape == (10,) and x[0] == 0 and y[1] == 5
    with pytest.raises(SegviewerError):
        grid_segments([0], [0, 1])


def test_scale_and_crosses() -> None:
    s = scale_segments(box_segments([[0, 0, 10, 10]]), (0.5, 2.0), (1, 1))
    np.testing.assert_array_equal(s[1], [[6, 1], [6, 21]])
    c = cross_segments(np.array([[5, 5]]), 2)
    np.testing.assert_array_equal(c, [[[3, 5], [7, 5]], [[5, 3], [5, 7]]])


def test_roi_align_segments_follow_the_grid() -> None:
    g = roi_align_grid((8, 8, 40, 30), (16, 16), 0.25, 7, 2, aligned=False)
    seg = roi_align_segments(g, scale=(2.0, 2.0))
    assert seg["bins"].shape == (16, 2, 2)
    np.testing.assert_allclose(seg["bins"][:, :, 0].min(), 16, atol=1e-4)
    np.testing.assert_allclose(seg["bins"][:, :, 0].max(), 80, atol=1e-4)
    assert seg["points"].shape == (7 * 7 * 4, 2)
    assert seg["links"].shape == (7 * 7 * 4 * 4, 2, 2) and len(seg["link_weights"]) == len(seg["links"])
    np.testing.assert_allclose(seg["link_weights"].reshape(-1, 4).sum(1), 1.0, atol=1e-6)
    # every link starts at a sample point and ends at a cell centre of the stride-4 grid (x2 display)
    ends = seg["links"][:, 1] / 2.0
    np.testing.assert_allclose((ends - 2) % 4, 0, atol=1e-4)


def test_roi_pool_segments() -> None:
    g = roi_pool_grid((8, 8, 40, 30), (16, 16), 0.25, 7)
    seg = roi_pool_segments(g)
    np.testing.assert_array_equal(seg["region"][0], [[8, 8], [44, 8]])
    assert len(seg["bins"]) == 4 * 49


def test_rasterize_segments_lands_on_pixels() -> None:
    layer = rasterize_segments(np.array([[[2.0, 5.5], [9.0, 5.5]]]), (10, 12), color=(10, 20, 30), alpha=200)
    assert layer.shape == (10, 12, 4) and layer.dtype == np.uint8
    rows, cols = np.nonzero(layer[..., 3])
    assert set(rows.tolist()) == {5} and cols.min() >= 1 and cols.max() <= 9
    assert np.all(layer[5, 3] == [10, 20, 30, 200])
    # per-segment colors and weights (weights scale alpha; zero weight draws nothing)
    segs = np.array([[[0.5, 1.5], [8.5, 1.5]], [[0.5, 4.5], [8.5, 4.5]]])
    lay = rasterize_segments(segs, (6, 10), colors=np.array([[255, 0, 0], [0, 255, 0]]), weights=[0.5, 0.0])
    assert lay[1, 4, 3] == 128 and lay[1, 4, 0] == 255 and lay[4, 4, 3] == 0
    with pytest.raises(SegviewerError):
        rasterize_segments(segs, (0, 10))
    with pytest.raises(SegviewerError):
        rasterize_segments(segs, (6, 10), weights=[1.0])


def test_rasterize_points() -> None:
    lay = rasterize_points(np.array([[5.5, 5.5], [100, 100]]), (12, 12), radius=2)
    assert lay[5, 5, 3] == 255 and lay[5, 8, 3] == 0 and lay[0, 0, 3] == 0
