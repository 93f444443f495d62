"""Anchors recomputed in numpy must equal torchvision's AnchorGenerator, number for number."""

import numpy as np
import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from segviewer.analysis.anchors import (
    DEFAULT_ASPECT_RATIOS,
    DEFAULT_FPN_SIZES,
    anchor_counts,
    anchors_at,
    cell_anchors,
    grid_anchors,
    level_strides,
)
from segviewer.analysis.roi_align import NothingHereError
from segviewer.core.errors import SegviewerError

torch.set_num_threads(1)

SPECS = [
    (DEFAULT_FPN_SIZES, DEFAULT_ASPECT_RATIOS),
    (((128, 256, 512),), ((0.5, 1.0, 2.0),)),
    (((16, 24), (40, 57)), ((0.33, 1.0, 3.0), (0.7, 1.4))),
]


def _torchvision(sizes, ratios, padded, grids):
    gen = AnchorGenerator(sizes, ratios)
    feats = [torch.zeros(1, 1, *g) for g in grids]
    il = ImageList(torch.zeros(1, 3, *padded), [padded])
    return gen(il, feats)[0].numpy(), gen


@pytest.mark.parametrize("sizes,ratios", SPECS)
def test_grid_anchors_equal_anchor_generator(sizes, ratios) -> None:
    padded = (96, 160)
    grids = [(96 // s, 160 // s) for s in (4, 8, 16, 32, 64)][: len(sizes)]
    ref, gen = _torchvision(sizes, ratios, padded, grids)
    strides = level_strides(padded, grids)
    ours = np.concatenate([grid_anchors(g, st, cell_anchors(s, r)) for g, st, s, r in zip(grids, strides, sizes, ratios)])
    np.testing.assert_array_equal(ours, ref)
    for s, r, base in zip(sizes, ratios, gen.cell_anchors):
        np.testing.assert_array_equal(cell_anchors(s, r), base.numpy())
    counts = anchor_counts(grids, gen.num_anchors_per_location())
    assert counts.sum() == len(ref)


@pytest.mark.parametrize("sizes,ratios", SPECS)
def test_anchors_at_a_click_index_the_flattened_list(sizes, ratios) -> None:
    padded = (100, 150)  # not a multiple of every stride: strides come from integer division
    grids = [(-(-100 // s), -(-150 // s)) for s in (4, 8, 16, 32, 64)][: len(sizes)]
    ref, _ = _torchvision(sizes, ratios, padded, grids)
    rng = np.random.default_rng(0)
    strides = level_strides(padded, grids)
    for level in range(len(sizes)):
        for _ in range(5):
            sy, sx = strides[level]
            x, y = rng.uniform(0, grids[level][1] * sx), rng.uniform(0, grids[level][0] * sy)
            at = anchors_at(x, y, level, grids, padded, sizes, ratios)
            np.testing.assert_array_equal(ref[at.flat_index], at.boxes)
            assert at.col * sx <= x < (at.col + 1) * sx and at.row * sy <= y < (at.row + 1) * sy
            centers = (at.boxes[:, :2] + at.boxes[:, 2:]) / 2
            np.testing.assert_allclose(centers, np.broadcast_to(at.center, centers.shape), atol=0.5)
            assert len(at.labels()) == len(at.boxes)


def test_default_base_anchors_have_the_promised_sizes() -> None:
    base = cell_anchors((128,), (0.5, 1.0, 2.0))
    w, h = base[:, 2] - base[:, 0], base[:, 3] - base[:, 1]
    np.testing.assert_allclose(h / w, [0.5, 1.0, 2.0], rtol=0.02)
    np.testing.assert_allclose(np.sqrt(w * h), 128, rtol=0.01)


def test_click_outside_the_grid_and_bad_specs() -> None:
    grids = [(10, 10)]
    with pytest.raises(NothingHereError, match="outside"):
        anchors_at(500, 5, 0, grids, (40, 40), ((32,),), ((1.0,),))
    with pytest.raises(NothingHereError):
        anchors_at(-1, 5, 0, grids, (40, 40), ((32,),), ((1.0,),))
    with pytest.raises(SegviewerError, match="Level 3"):
        anchors_at(5, 5, 3, grids, (40, 40), ((32,),), ((1.0,),))
    with pytest.raises(SegviewerError, match="positive"):
        cell_anchors((0,), (1.0,))
