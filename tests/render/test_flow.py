"""Flow rendering against torchvision's flow_to_image, and the arrows' geometry."""

import numpy as np
import pytest

from segviewer.core.errors import SegviewerError
from segviewer.core.results import FlowField
from segviewer.render.flow import (
    arrow_heads,
    flow_arrows,
    flow_to_rgb,
    flow_to_rgba,
    magnitude_heatmap,
    rasterize_arrows,
    wheel_legend,
)


def _flow(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=4.0, size=(h, w, 2)).astype(np.float32)


def test_per_frame_normalisation_matches_torchvision() -> None:
    torch = pytest.importorskip("torch")
    from torchvision.utils import flow_to_image

    f = _flow()
    ref = flow_to_image(torch.from_numpy(f).permute(2, 0, 1).contiguous()).permute(1, 2, 0).numpy()
    got = flow_to_rgb(FlowField(f))
    assert got.dtype == np.uint8 and got.shape == (24, 32, 3)
    # float32 (torch) vs float64 (ours) may flip a floor() by one level
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    assert (got == ref).mean() > 0.95


def test_fixed_max_magnitude_gives_the_same_color_on_every_frame() -> None:
    a = np.zeros((4, 4, 2), np.float32)
    a[..., 0] = 2.0
    b = a.copy()
    b[0, 0, 0] = 20.0  # a faster pixel elsewhere must not change the others' colors
    ca, cb = flow_to_rgb(a, max_magnitude=10.0), flow_to_rgb(b, max_magnitude=10.0)
    np.testing.assert_array_equal(ca[1:], cb[1:])
    # longer than the maximum saturates at the rim instead of overflowing
    rim = flow_to_rgb(np.array([[[10.0, 0.0]]]), 10.0)
    np.testing.assert_array_equal(cb[0, 0], rim[0, 0])
    assert not np.array_equal(ca[0, 0], cb[0, 0])
    # zero motion is white
    assert flow_to_rgb(np.zeros((1, 1, 2)), 5.0)[0, 0].tolist() == [255, 255, 255]


def test_legend_is_a_disc_whose_colors_are_the_coding() -> None:
    leg = wheel_legend(65, max_magnitude=8.0)
    assert leg.shape == (65, 65, 4)
    assert leg[0, 0, 3] == 0 and leg[32, 32, 3] == 255 and leg[32, 64, 3] == 255
    # the pixel right of the centre at the rim is the color of a rightward vector of max length
    np.testing.assert_array_equal(leg[32, 64, :3], flow_to_rgb(np.array([[[8.0, 0.0]]]), 8.0)[0, 0])
    np.testing.assert_array_equal(leg[32, 32, :3], [255, 255, 255])
    assert flow_to_rgba(_flow(), 5.0, alpha=128)[..., 3].max() == 128


def test_arrows_start_at_grid_centres_and_follow_the_vectors() -> None:
    f = np.zeros((32, 48, 2), np.float32)
    f[..., 0], f[..., 1] = 2.0, -1.0
    seg = flow_arrows(f, step=16, scale=3.0)
    assert seg.shape == (2 * 3, 2, 2) and seg.dtype == np.float32
    np.testing.assert_allclose(seg[0, 0], [8.5, 8.5])
    np.testing.assert_allclose(seg[:, 1] - seg[:, 0], np.tile([[6.0, -3.0]], (6, 1)))
    assert len(flow_arrows(f, step=8)) == 4 * 6
    assert len(flow_arrows(f, step=8, min_magnitude=5.0)) == 0
    with pytest.raises(SegviewerError):
        flow_arrows(f, step=0)
    assert arrow_heads(seg).shape == (12, 2, 2)


def test_rasterized_arrows_draw_where_the_segments_are() -> None:
    seg = np.array([[[4.5, 10.5], [28.5, 10.5]]], np.float32)
    layer = rasterize_arrows(seg, (20, 40), color=(255, 0, 0), heads=False)
    assert layer.shape == (20, 40, 4)
    assert layer[10, 5:28, 3].min() > 200  # along the line
    assert layer[0:5, :, 3].max() == 0 and layer[:, 32:, 3].max() == 0  # nowhere else
    assert (layer[..., 0] == 255).all() and (layer[..., 1] == 0).all()


def test_magnitude_heatmap_is_monotone_in_speed_bins() -> None:
    f = np.zeros((1, 3, 2), np.float32)
    f[0, :, 0] = [0.0, 5.0, 10.0]
    hm = magnitude_heatmap(f, max_magnitude=10.0)
    assert hm.shape == (1, 3, 4) and hm.dtype == np.uint8
    assert len({tuple(c) for c in hm[0, :, :3]}) == 3
    with pytest.raises(SegviewerError):
        magnitude_heatmap(f, max_magnitude=0.0)


def test_flow_layer_samples_the_viewport_with_a_fixed_rim() -> None:
    from dataclasses import dataclass

    from segviewer.render.flow import flow_layer
    from segviewer.render.layers import Viewport

    @dataclass
    class Style:
        flow_max_magnitude: float = 10.0

    f = _flow(24, 32)
    vp = Viewport.make((24, 32), (8, 4, 24, 20), (8, 8))  # a 16x16 window shown at half size
    layer = flow_layer(FlowField(f), "flow", Style(), vp)
    assert layer.shape == (8, 8, 4)
    np.testing.assert_array_equal(layer, flow_to_rgba(vp.sample(f), 10.0))
    # with no fixed rim in the style, the frame's own maximum
    np.testing.assert_array_equal(flow_layer(f, "flow", object(), Viewport.make((24, 32))), flow_to_rgba(f))


def test_flow_registers_with_the_layer_registry_when_it_has_a_flow_kind() -> None:
    from segviewer.render import layers
    from segviewer.render.flow import register_flow_layer

    registered = register_flow_layer()
    assert registered == hasattr(layers.LayerKind, "FLOW")
    if registered:
        f = FlowField(_flow())
        np.testing.assert_array_equal(layers.render_layer(f, "flow"), flow_to_rgba(f.uv))
