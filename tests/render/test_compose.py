"""compose() against the float64 formula, and the fast render_overlay against compose()."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.render import LayerKind, RenderStyle, compose, overlay_layers, render_layer, render_overlay
from segviewer.render.masks import blend_masks


def _reference(image: np.ndarray, layers: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """float64 source-over, the formula in the docstring, rounded only at the very end."""
    out = image.astype(np.float64)
    for layer, o in layers:
        t = layer[..., 3:4].astype(np.float64) / 255.0 * o
        out = out * (1.0 - t) + layer[..., :3].astype(np.float64) * t
    return out


def test_single_blend_is_within_half_lsb_of_float64() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    for o in (1.0, 0.73, 0.5, 0.01):
        layer = rng.integers(0, 256, (64, 80, 4), dtype=np.uint8)
        layer[::3, ::2, 3] = 0
        ref = _reference(img, [(layer, o)])
        out = compose(img, [(layer, o)])
        assert np.abs(out - ref).max() <= 0.5 + 1e-4
        assert np.array_equal(compose(img, [(layer, 0.0)]), img)


def test_stacked_blends_within_one_lsb_per_layer() -> None:
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    layers = [(rng.integers(0, 256, (48, 48, 4), dtype=np.uint8), o) for o in (0.9, 0.4, 1.0)]
    out = compose(img, layers)
    # each layer rounds once (<= 0.5) and passes earlier errors on scaled by (1 - t) <= 1
    assert np.abs(out - _reference(img, layers)).max() <= 1.5
    one = compose(img, layers[:1])
    assert np.abs(one - _reference(img, layers[:1])).max() <= 0.5 + 1e-4


def test_opaque_and_transparent_pixels_are_exact() -> None:
    img = np.full((4, 4, 3), 17, np.uint8)
    layer = np.zeros((4, 4, 4), np.uint8)
    layer[0, 0] = (200, 100, 50, 255)
    layer[1, 1] = (200, 100, 50, 0)
    out = compose(img, [(layer, 1.0)])
    assert out[0, 0].tolist() == [200, 100, 50] and out[1, 1].tolist() == [17, 17, 17]
    half = compose(img, [(layer, 0.5)])
    assert half[0, 0].tolist() == [round(17 * 0.5 + 200 * 0.5), round(17 * 0.5 + 50), round(17 * 0.5 + 25)]


def test_compose_rejects_bad_input() -> None:
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="layer 0"):
        compose(img, [(np.zeros((4, 5, 4), np.uint8), 1.0)])
    with pytest.raises(ValueError, match="opacity"):
        compose(img, [(np.zeros((4, 4, 4), np.uint8), 1.5)])
    with pytest.raises(ValueError, match="RGB uint8"):
        compose(np.zeros((4, 4), np.uint8), [])


@pytest.mark.parametrize("opacity", [1.0, 0.6])
def test_render_overlay_equals_compose_of_layers(scenes, opacity: float) -> None:
    img = scenes.image(96, 128, seed=3)
    dets = scenes.detections(7, 96, 128, seed=3, keypoints=True)
    sem = scenes.semantic(96, 128, seed=3)
    ops = {LayerKind.SEMANTIC: 0.5, LayerKind.MASKS: opacity, LayerKind.BOXES: opacity,
           LayerKind.LABELS: opacity, LayerKind.KEYPOINTS: opacity}
    fast = render_overlay(img, [sem, dets], ops)
    slow = compose(img, overlay_layers([sem, dets], ops))
    assert np.abs(fast.astype(int) - slow).max() <= 1
    assert (fast != img).any(axis=-1).mean() > 0.3  # something was drawn


def test_render_overlay_only_draws_named_layers_and_accepts_strings(scenes) -> None:
    img = scenes.image(64, 64, seed=4)
    dets = scenes.detections(4, 64, 64, seed=4)
    boxes_only = render_overlay(img, [dets], {"boxes": 1.0})
    assert np.array_equal(boxes_only, compose(img, [(render_layer(dets, "boxes"), 1.0)]))
    assert np.array_equal(render_overlay(img, [dets], {}), img)
    assert np.array_equal(render_overlay(img, [dets], {"masks": 0.0}), img)
    with pytest.raises(ValueError, match="does not fit"):
        render_overlay(scenes.image(32, 32), [dets], {"boxes": 1.0})


@pytest.mark.parametrize("method", ["lut", "crops", "direct"])
@pytest.mark.parametrize("border", [0, 1, 3])
def test_both_mask_blend_paths_equal_compose(scenes, method: str, border: int) -> None:
    img = scenes.image(80, 120, seed=5)
    dets = scenes.detections(9, 80, 120, seed=5)
    style = RenderStyle(mask_border=border, mask_alpha=0.35)
    for o in (1.0, 0.45):
        out = img.copy()
        blend_masks(out, dets, o, style, method=method)
        ref = compose(img, [(render_layer(dets, "masks", style), o)])
        assert np.abs(out.astype(int) - ref).max() <= 1, (method, border, o)


@pytest.mark.parametrize("method", [None, "crops", "direct"])
def test_many_masks_use_wide_labels(scenes, method: str | None) -> None:
    # 2N + 1 > 255 labels: the label image is uint16 (no lookup path)
    img = scenes.image(64, 64, seed=6)
    dets = scenes.detections(140, 64, 64, seed=6)
    out = img.copy()
    blend_masks(out, dets, 0.8, RenderStyle(), method=method)
    ref = compose(img, [(render_layer(dets, "masks"), 0.8)])
    assert np.abs(out.astype(int) - ref).max() <= 1
