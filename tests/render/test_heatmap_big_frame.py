"""The nearest-cell heatmap over a big photograph (RPN objectness on a 4000x3000 image): the fast
path gathers coloured cells and must not resample the grid to the full frame first (its old
validation call did: ~0.4 s per FPN level on a 2-core machine), while bad sizes still fail."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.core.errors import SegviewerError
from segviewer.render import heatmap


def test_nearest_heatmap_does_not_resample_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    grid = rng.random((64, 85)).astype(np.float32)
    cells = heatmap.heatmap_rgba(grid, 0.0, 1.0, "magma", alpha=200, alpha_by_value=True)  # one pixel a cell

    def no_resample(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("the nearest path resampled the grid to the output frame")

    monkeypatch.setattr(heatmap, "resample_grid", no_resample)
    big = heatmap.heatmap_rgba(grid, 0.0, 1.0, "magma", alpha=200, out_size=(3000, 4000),
                               extent=(0.0, 0.0, 85.0, 64.0), alpha_by_value=True)
    assert big.shape == (3000, 4000, 4)
    # each output pixel is the cell under its centre
    rows = np.floor((np.arange(3000) + 0.5) * 64 / 3000).astype(int)
    cols = np.floor((np.arange(4000) + 0.5) * 85 / 4000).astype(int)
    np.testing.assert_array_equal(big, cells[rows[:, None], cols[None, :]])
    with pytest.raises(SegviewerError, match="positive"):
        heatmap.heatmap_rgba(grid, out_size=(0, 10))
    with pytest.raises(SegviewerError, match="empty"):
        heatmap.heatmap_rgba(grid, out_size=(10, 10), extent=(5.0, 0.0, 5.0, 4.0))
