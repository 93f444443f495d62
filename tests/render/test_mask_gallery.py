"""The gallery picture: each tile is exactly its map's heatmap (one shared scale or each its own),
at its returned rectangle, the highlighted tile framed, marks drawn as crosses on their cells."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.core.errors import SegviewerError
from segviewer.render.heatmap import heatmap_rgba
from segviewer.render.mask_gallery import gallery_columns, gallery_rgba


@pytest.mark.parametrize(("vmin", "vmax"), [(0.0, 1.0), (None, None), (None, 2.0)])
def test_tiles_are_each_maps_heatmap(vmin: float | None, vmax: float | None) -> None:
    rng = np.random.default_rng(0)
    maps = rng.normal(0, 3, (11, 28, 28)).astype(np.float32)
    maps[4] = 0.5  # a constant map
    pic, rects = gallery_rgba(maps, [f"c{i}" for i in range(11)], highlight=None, vmin=vmin, vmax=vmax, zoom=2)
    assert rects.shape == (11, 4) and gallery_columns(11) == 4
    for m, (x, y, w, h) in zip(maps, rects):
        assert (w, h) == (56, 56) and x + w <= pic.shape[1] and y + h <= pic.shape[0]
        want = np.repeat(np.repeat(heatmap_rgba(m, vmin, vmax, "viridis", alpha=255), 2, 0), 2, 1)
        np.testing.assert_array_equal(pic[y: y + h, x: x + w], want)
    boxes = [(x, y, x + w, y + h) for x, y, w, h in rects]
    assert all(a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
               for i, a in enumerate(boxes) for b in boxes[i + 1:])  # tiles never overlap


def test_highlight_frame_and_marks() -> None:
    maps = np.zeros((5, 8, 8), np.float32)
    marks = np.array([[2, 3], [np.nan, np.nan], [0, 0], [7, 7], [4, 4]], np.float64)
    pic, rects = gallery_rgba(maps, list("abcde"), highlight=2, zoom=1, marks=marks)
    for i, (x, y, w, h) in enumerate(rects):
        framed = tuple(pic[y - 1, x + w // 2]) == (255, 210, 0, 255)
        assert framed == (i == 2)
        tile = pic[y: y + h, x: x + w]
        white = (tile[..., :3] == 255).all(-1)
        if i == 1:
            assert not white.any()
        else:
            r, c = (int(v) for v in marks[i])
            assert white[r, c] and white.sum() >= 2


def test_bad_input_is_refused() -> None:
    with pytest.raises(SegviewerError, match="tiles, h, w"):
        gallery_rgba(np.zeros((8, 8)), ["a"])
    with pytest.raises(SegviewerError, match="names"):
        gallery_rgba(np.zeros((2, 8, 8)), ["a"])


def test_picked_tile_framed_white_under_the_highlight() -> None:
    maps = np.zeros((4, 8, 8), np.float32)
    pic, rects = gallery_rgba(maps, list("abcd"), highlight=1, picked=3, zoom=2)
    color = {i: tuple(pic[y - 1, x + w // 2]) for i, (x, y, w, h) in enumerate(rects)}
    assert color[1] == (255, 210, 0, 255) and color[3] == (255, 255, 255, 255)
    assert color[0] != color[1] and color[0] != color[3]
    both, _ = gallery_rgba(maps, list("abcd"), highlight=2, picked=2, zoom=2)
    x, y, w, _h = rects[2]
    assert tuple(both[y - 1, x + w // 2]) == (255, 210, 0, 255)  # the box head's class wins
