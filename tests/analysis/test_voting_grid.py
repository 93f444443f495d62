"""Votes on a coarse grid (the PCV net's stride-4 output) placed on the image: nearest
up-sampling, the grid cell under a point, a pixel's distribution on the table, instances kept to
thing pixels."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.analysis.voting import (
    LOOKUP_TABLE,
    distribution_table,
    grid_to_image,
    image_instances,
    image_to_grid,
)
from segviewer.core.errors import SegviewerError


def test_grid_to_image_is_nearest_with_the_scale() -> None:
    g = np.arange(6).reshape(2, 3)
    out = grid_to_image(g, (7, 10), (4.0, 4.0))
    assert out.shape == (7, 10)
    assert out[0, 0] == 0 and out[3, 3] == 0 and out[4, 4] == 4 and out[6, 9] == 5  # clipped at the edge
    assert (out[:4, 4:8] == 1).all()
    # a non-integer scale (the adapter's rescale): pixel x maps to floor(x / sx)
    out = grid_to_image(g, (2, 9), (3.001, 1.0))
    assert out[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2]
    with pytest.raises(SegviewerError, match="scale"):
        grid_to_image(g, (4, 4), (0.0, 1.0))
    with pytest.raises(SegviewerError, match="2-D"):
        grid_to_image(np.zeros(3), (4, 4), (1.0, 1.0))


def test_image_to_grid_and_back_agree() -> None:
    scale, shape = (3.0, 4.0), (5, 7)
    g = np.arange(35).reshape(shape)
    up = grid_to_image(g, (20, 21), scale)
    for x, y in [(0.5, 0.5), (8.9, 12.1), (20.5, 19.9)]:
        r, c = image_to_grid(x, y, scale, shape)
        assert g[r, c] == up[int(y), int(x)]
    assert image_to_grid(-1, 3, scale, shape) is None and image_to_grid(3, 20, scale, shape) is None


def test_distribution_table_spreads_each_cell_over_its_units() -> None:
    p = np.zeros(18)
    p[0], p[9], p[17] = 0.5, 0.45, 0.05  # the centre, the top outer block, abstain
    t = distribution_table(p)
    assert t.shape == (9, 9)
    assert t[4, 4] == pytest.approx(0.5)
    assert np.allclose(t[LOOKUP_TABLE == 9], 0.05)  # 0.45 over 9 units
    assert t.sum() == pytest.approx(0.95)  # abstain is not on the table
    with pytest.raises(SegviewerError, match="17"):
        distribution_table(np.ones(5))


def test_image_instances_keep_to_thing_pixels() -> None:
    grid = np.array([[0, 1], [2, 2]], np.int32)
    keep = np.ones((4, 4), bool)
    keep[0, 3] = False
    out = image_instances(grid, (4, 4), (2.0, 2.0), keep)
    assert out[0, 2] == 1 and out[0, 3] == 0 and (out[2:] == 2).all()
    assert (image_instances(grid, (4, 4), (2.0, 2.0)) == grid_to_image(grid, (4, 4), (2.0, 2.0))).all()
    with pytest.raises(SegviewerError, match="keep"):
        image_instances(grid, (4, 4), (2.0, 2.0), np.ones((3, 3), bool))
