"""RoIAlign / RoIPool geometry recomputed in numpy must equal torchvision.ops exactly (1e-5)."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torchvision
from torchvision.ops import MultiScaleRoIAlign

from segviewer.analysis.roi_align import (
    BadBoxError,
    NothingHereError,
    box_at,
    fpn_levels,
    fpn_roi_align_grid,
    rect_difference,
    roi_align_grid,
    roi_pool_grid,
)
from segviewer.core.errors import SegviewerError

torch.set_num_threads(1)
STRIDES = (4, 8, 16, 32)


def _random_case(rng: np.random.Generator, stride: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = (int(v) for v in rng.integers(4, 24, 2))
    feat = rng.standard_normal((3, h, w)).astype(np.float32)
    x0, y0 = rng.uniform(-0.3 * w * stride, w * stride), rng.uniform(-0.3 * h * stride, h * stride)
    bw, bh = rng.uniform(0.3, 0.9 * w * stride), rng.uniform(0.3, 0.9 * h * stride)
    return feat, np.array([x0, y0, x0 + bw, y0 + bh], np.float32)


@pytest.mark.parametrize("stride", STRIDES)
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [2, 0, -1])
@pytest.mark.parametrize("output_size", [7, 14, (3, 5)])
def test_roi_align_points_reproduce_torchvision(stride: int, aligned: bool, sampling_ratio: int,
                                                output_size) -> None:
    rng = np.random.default_rng(stride * 100 + sampling_ratio + 10 * aligned)
    for _ in range(12):
        feat, box = _random_case(rng, stride)
        ref = torchvision.ops.roi_align(torch.from_numpy(feat)[None], [torch.from_numpy(box)[None]],
                                        output_size, 1.0 / stride, sampling_ratio, aligned)[0].numpy()
        grid = roi_align_grid(box, feat.shape[1:], 1.0 / stride, output_size, sampling_ratio, aligned)
        np.testing.assert_allclose(grid.pooled(feat), ref, atol=1e-5, rtol=0)


def test_adaptive_sampling_counts_follow_roi_size() -> None:
    g = roi_align_grid((0, 0, 70, 29), (40, 40), 1.0, 7, sampling_ratio=0)
    assert g.sampling == (5, 10) and g.count == 50
    g2 = roi_align_grid((0, 0, 70, 29), (40, 40), 1.0, 7, sampling_ratio=2)
    assert g2.sampling == (2, 2) and g2.points.shape == (7, 7, 2, 2, 2)


def test_sample_points_sit_inside_their_bins_in_image_space() -> None:
    box = (10.0, 20.0, 90.0, 60.0)
    for aligned in (False, True):
        g = roi_align_grid(box, (30, 30), 0.25, 7, 2, aligned)
        xs, ys = g.bin_edges_image()
        np.testing.assert_allclose([xs[0], ys[0], xs[-1], ys[-1]], box, atol=1e-4)
        p = g.points_image()
        for i in range(7):
            for j in range(7):
                assert np.all((p[i, j, ..., 0] > xs[j]) & (p[i, j, ..., 0] < xs[j + 1]))
                assert np.all((p[i, j, ..., 1] > ys[i]) & (p[i, j, ..., 1] < ys[i + 1]))
    # weights of a valid point sum to one
    w = roi_align_grid(box, (30, 30), 0.25).weights.sum(-1)
    np.testing.assert_allclose(w, 1.0, atol=1e-6)


def test_points_outside_the_map_contribute_nothing() -> None:
    g = roi_align_grid((-200, -200, -100, -100), (10, 10), 0.25, 7, 2)
    assert not g.valid.any() and np.all(g.weights == 0)
    np.testing.assert_array_equal(g.pooled(np.ones((1, 10, 10))), 0)


@pytest.mark.parametrize("stride", STRIDES)
def test_roi_pool_grid_reproduces_torchvision(stride: int) -> None:
    rng = np.random.default_rng(stride)
    for _ in range(30):
        feat, box = _random_case(rng, stride)
        ref = torchvision.ops.roi_pool(torch.from_numpy(feat)[None], [torch.from_numpy(box)[None]],
                                       (7, 7), 1.0 / stride)[0].numpy()
        grid = roi_pool_grid(box, feat.shape[1:], 1.0 / stride, 7)
        np.testing.assert_allclose(grid.pooled(feat), ref, atol=1e-5, rtol=0)
        arg = grid.argmax(feat)
        nonempty = arg[..., 0] >= 0
        c, i, j = np.nonzero(nonempty)
        np.testing.assert_array_equal(feat[c, arg[c, i, j, 0], arg[c, i, j, 1]], ref[c, i, j])


def test_roi_pool_snaps_with_round_half_away_and_inclusive_end() -> None:
    g = roi_pool_grid((8.0, 8.0, 40.0, 24.0), (20, 20), 1 / 16, 2)
    # 8/16 = 0.5 rounds to 1 (not to even 0); 40/16 = 2.5 -> 3; 24/16 = 1.5 -> 2
    assert g.roi_cells == (1, 1, 3, 2)
    np.testing.assert_array_equal(g.region_image(), [16, 16, 64, 48])
    d = g.difference()
    assert d.box_area == 32 * 16 and d.region_area == 48 * 32
    assert d.overlap == 24 * 8
    assert d.difference == pytest.approx(d.box_area + d.region_area - 2 * d.overlap)


def test_rect_difference_is_symmetric_difference() -> None:
    d = rect_difference(np.array([0, 0, 10, 10]), np.array([5, 5, 15, 15]))
    assert (d.lost, d.gained, d.difference) == (75, 75, 150)
    assert rect_difference(np.array([0, 0, 4, 4]), np.array([0, 0, 4, 4])).difference == 0


def _level_mapper_reference(boxes: np.ndarray) -> np.ndarray:
    from torchvision.ops.poolers import LevelMapper

    return LevelMapper(2, 5)([torch.from_numpy(boxes)]).numpy() + 2


def test_fpn_levels_match_torchvision_level_mapper() -> None:
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 500, (2000, 2))
    wh = np.exp(rng.uniform(np.log(2), np.log(1500), (2000, 2)))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    # boxes whose sqrt(area) sits exactly on the level boundaries 112, 224, 448
    edge = np.array([[0, 0, 112, 112], [0, 0, 224, 224], [0, 0, 448, 448], [0, 0, 111.9, 112]], np.float32)
    boxes = np.concatenate([boxes, edge])
    np.testing.assert_array_equal(fpn_levels(boxes), _level_mapper_reference(boxes))
    assert set(fpn_levels(boxes).tolist()) == {2, 3, 4, 5}


@pytest.mark.parametrize("sampling_ratio", [2, -1])
def test_multiscale_roi_align_equals_grid_at_every_level(sampling_ratio: int) -> None:
    """The detector's own pooler (level mapping + RoIAlign at strides 4..32) is what we draw."""
    rng = np.random.default_rng(7)
    size = 512
    feats = OrderedDict((str(i), torch.from_numpy(rng.standard_normal((1, 2, size // s, size // s)).astype(np.float32)))
                        for i, s in enumerate(STRIDES))
    sides = [20, 60, 150, 300, 505, 9]
    boxes = []
    for side in sides:
        x0, y0 = rng.uniform(0, size - side, 2)
        boxes.append([x0, y0, x0 + side * rng.uniform(0.9, 1.0), y0 + side * rng.uniform(0.9, 1.0)])
    boxes = np.array(boxes, np.float32)
    pooler = MultiScaleRoIAlign(list(feats), 7, sampling_ratio)
    ref = pooler(feats, [torch.from_numpy(boxes)], [(size, size)]).numpy()
    sizes = [tuple(f.shape[-2:]) for f in feats.values()]
    levels = set()
    for k, b in enumerate(boxes):
        lvl, grid = fpn_roi_align_grid(b, sizes, 2, 7, sampling_ratio)
        levels.add(lvl)
        np.testing.assert_allclose(grid.pooled(feats[str(lvl)][0].numpy()), ref[k], atol=1e-5, rtol=0)
    assert levels == {0, 1, 2, 3}


def test_weight_map_and_cells_cover_the_box() -> None:
    g = roi_align_grid((16, 16, 48, 48), (16, 16), 0.25, 7, 2, aligned=True)
    assert g.weight_map().sum() == pytest.approx(49.0)
    cells = g.cell_boxes_image()
    assert cells[:, 0].min() <= 16 and cells[:, 2].max() >= 48


@pytest.mark.parametrize("box", [(5, 5, 5, 20), (5, 5, 20, 5), (10, 5, 2, 20), (0, 0, np.nan, 3)])
def test_degenerate_boxes_raise_a_clear_error(box) -> None:
    with pytest.raises(BadBoxError) as err:
        roi_align_grid(box, (10, 10), 0.25)
    assert "\n" not in str(err.value) and isinstance(err.value, SegviewerError)
    with pytest.raises(BadBoxError):
        roi_pool_grid(box, (10, 10), 0.25)


def test_click_on_empty_space_raises_and_click_inside_picks_smallest() -> None:
    boxes = np.array([[0, 0, 100, 100], [10, 10, 30, 30]], np.float32)
    assert box_at(boxes, 20, 20) == 1
    assert box_at(boxes, 60, 60) == 0
    with pytest.raises(NothingHereError, match="No box contains"):
        box_at(boxes, 150, 5)
    with pytest.raises(NothingHereError):
        box_at(np.zeros((0, 4)), 1, 1)


def test_feature_shape_mismatch_is_a_clear_error() -> None:
    g = roi_align_grid((0, 0, 8, 8), (4, 4), 0.5)
    with pytest.raises(SegviewerError, match="grid was built"):
        g.pooled(np.zeros((1, 5, 5)))
