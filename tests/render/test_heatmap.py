"""Heatmaps: colormaps, resampling onto the image, transparency and legends."""

import numpy as np
import pytest

from segviewer.core.errors import SegviewerError
from segviewer.render.heatmap import (
    COLORMAPS,
    colormap_lut,
    heatmap_rgba,
    legend_rgba,
    make_legend,
    nice_ticks,
    normalize,
    resample_grid,
)


@pytest.mark.parametrize("name", COLORMAPS)
def test_luts_are_rgb_and_distinct_ends(name: str) -> None:
    lut = colormap_lut(name)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert not np.array_equal(lut[0], lut[-1])


def test_viridis_is_rgb_not_bgr() -> None:
    lut = colormap_lut("viridis")
    assert lut[0, 2] > lut[0, 0]  # viridis starts dark purple/blue
    assert lut[-1, 0] > lut[-1, 2]  # and ends yellow


def test_heatmap_maps_range_to_lut_ends_and_nan_to_transparent() -> None:
    v = np.array([[0.0, 1.0], [np.nan, 0.5]], np.float32)
    out = heatmap_rgba(v, cmap="gray", alpha=200)
    assert out.shape == (2, 2, 4)
    np.testing.assert_array_equal(out[0, 0], [0, 0, 0, 200])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255, 200])
    assert out[1, 0, 3] == 0 and out[1, 1, 0] in (127, 128)
    fade = heatmap_rgba(v, cmap="gray", alpha=200, alpha_by_value=True)
    assert fade[0, 0, 3] == 0 and fade[0, 1, 3] == 200


def test_symmetric_normalisation_centres_zero() -> None:
    t, lo, hi = normalize(np.array([-1.0, 3.0]), symmetric=True)
    assert (lo, hi) == (-3.0, 3.0)
    np.testing.assert_allclose(t, [1 / 3, 1.0])
    mid = heatmap_rgba(np.array([[0.0, -2.0, 2.0]]), cmap="diverging", symmetric=True)
    assert tuple(mid[0, 0, :3]) == tuple(colormap_lut("diverging")[128])


def test_resample_nearest_shows_cells_as_blocks_with_extent() -> None:
    v = np.arange(6, dtype=np.float32).reshape(2, 3)  # a stride-4 grid of a 12x8 model image
    out = resample_grid(v, (8, 12))
    np.testing.assert_array_equal(out[:4, :4], 0)
    np.testing.assert_array_equal(out[4:, 8:], 5)
    # an image that covers only 2.5 x 1.5 cells (the rest was padding)
    part = resample_grid(v, (6, 10), extent=(0, 0, 2.5, 1.5))
    assert part[0, 0] == 0 and part[-1, -1] == 5 and part[0, 4] == 1
    outside = resample_grid(v, (4, 4), extent=(2, 0, 4, 2))
    assert np.isnan(outside[:, 2:]).all() and not np.isnan(outside[:, :2]).any()


def test_resample_linear_matches_cell_centres() -> None:
    v = np.array([[0.0, 10.0]], np.float32)
    out = resample_grid(v, (1, 4), interpolation="linear")
    # output centres at grid x 0.25, 0.75, 1.25, 1.75 -> cell-centre interpolation
    np.testing.assert_allclose(out[0, 1:3], [2.5, 7.5], atol=1e-4)
    with pytest.raises(SegviewerError):
        resample_grid(v, (1, 4), interpolation="cubic")


def test_ticks_and_legend() -> None:
    np.testing.assert_allclose(nice_ticks(0, 1, 5), [0, 0.25, 0.5, 0.75, 1.0])
    t = nice_ticks(-3.7, 12.2, 5)
    assert t[0] >= -3.7 and t[-1] <= 12.2 and len(t) >= 3
    leg = make_legend(0.0, 1.0, "magma", "objectness")
    assert leg.labels[0] == "0" and leg.position(0.5) == 0.5
    img = legend_rgba(leg, (120, 60))
    assert img.shape == (120, 60, 4)
    bar = img[18:114, 6, :3]
    np.testing.assert_array_equal(bar[0], colormap_lut("magma")[255])  # vmax on top
    np.testing.assert_array_equal(bar[-1], colormap_lut("magma")[0])


def test_bad_inputs_are_clear() -> None:
    with pytest.raises(SegviewerError, match="Unknown colormap"):
        colormap_lut("rainbow-unicorn")
    with pytest.raises(SegviewerError, match="2-D"):
        heatmap_rgba(np.zeros((2, 2, 2)))
    with pytest.raises(SegviewerError):
        legend_rgba(make_legend(0, 1), (10, 10))
    flat = heatmap_rgba(np.full((3, 3), 7.0))  # a constant map is fine
    assert flat.shape == (3, 3, 4)


def test_fast_nearest_path_equals_resample_then_color() -> None:
    rng = np.random.default_rng(0)
    v = rng.random((7, 9)).astype(np.float32)
    v[2, 3] = np.nan
    for ext in (None, (0, 0, 4.5, 3.2), (-1, -2, 12, 9)):
        for kw in ({}, {"alpha_by_value": True, "cmap": "turbo"}, {"symmetric": True}):
            fast = heatmap_rgba(v, out_size=(30, 41), extent=ext, **kw)
            slow = heatmap_rgba(resample_grid(v, (30, 41), ext), **kw) if ext is None else None
            if slow is not None:  # the whole grid: same range either way
                np.testing.assert_array_equal(fast, slow)
            ref = heatmap_rgba(resample_grid(v, (30, 41), ext), v[np.isfinite(v)].min(), v[np.isfinite(v)].max(),
                               **{k: a for k, a in kw.items() if k != "symmetric"}) if "symmetric" not in kw else None
            if ref is not None:
                np.testing.assert_array_equal(fast, ref)
    with pytest.raises(SegviewerError):
        heatmap_rgba(v, extent=(0, 0, 1, 1))
    with pytest.raises(SegviewerError):
        heatmap_rgba(v, out_size=(0, 5))
