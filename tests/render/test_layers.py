"""layer_kinds, the renderer registry, and window/out_size sampling."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from segviewer.core.results import Detections
from segviewer.render import LayerKind, RenderStyle, Viewport, layer_kinds, register_renderer, render_layer


def _nearest(full: np.ndarray, window: tuple[int, int, int, int], out_size: tuple[int, int]) -> np.ndarray:
    """Independent reference: sample pixel centres with float64 arithmetic."""
    x0, y0, x1, y1 = window
    oh, ow = out_size
    rows = np.floor(y0 + (np.arange(oh) + 0.5) * (y1 - y0) / oh).astype(int)
    cols = np.floor(x0 + (np.arange(ow) + 0.5) * (x1 - x0) / ow).astype(int)
    return full[rows][:, cols]


def test_layer_kinds(scenes) -> None:
    d = scenes.detections(3, 32, 32)
    assert layer_kinds(d) == (LayerKind.MASKS, LayerKind.BOXES, LayerKind.LABELS)
    assert layer_kinds(scenes.detections(3, 32, 32, masks=False)) == (LayerKind.BOXES, LayerKind.LABELS)
    assert LayerKind.KEYPOINTS in layer_kinds(scenes.detections(3, 32, 32, keypoints=True))
    assert layer_kinds(scenes.semantic(32, 32)) == (LayerKind.SEMANTIC,)
    assert layer_kinds(object()) == ()
    assert LayerKind("panoptic") is LayerKind.PANOPTIC and LayerKind.MASKS == "masks"


def test_render_layer_rejects_what_the_result_does_not_offer(scenes) -> None:
    d = scenes.detections(3, 32, 32, masks=False)
    with pytest.raises(ValueError, match="offers no 'masks' layer"):
        render_layer(d, LayerKind.MASKS)
    with pytest.raises(ValueError, match="window"):
        render_layer(d, "boxes", window=(0, 0, 40, 10))
    with pytest.raises(ValueError, match="window"):
        render_layer(d, "boxes", window=(5, 5, 5, 10))
    with pytest.raises(ValueError, match="out_size"):
        render_layer(d, "boxes", out_size=(0, 4))


@dataclass(frozen=True)
class _Checker:
    image_size: tuple[int, int]


def test_register_renderer_dispatches_by_type() -> None:
    seen = []

    def render(result: _Checker, kind: LayerKind, style: RenderStyle, vp: Viewport) -> np.ndarray:
        seen.append((kind, vp.window, vp.out_size))
        out = vp.blank()
        out[::2, ::2] = (255, 0, 0, 255)
        return out

    register_renderer(_Checker, (LayerKind.PANOPTIC,), render)
    r = _Checker((10, 20))
    assert layer_kinds(r) == (LayerKind.PANOPTIC,)
    layer = render_layer(r, "panoptic", window=(2, 0, 12, 10), out_size=(5, 5))
    assert layer.shape == (5, 5, 4) and seen == [(LayerKind.PANOPTIC, (2, 0, 12, 10), (5, 5))]

    register_renderer(_Checker, lambda res: (LayerKind.MASKS,), lambda *a: np.zeros((3, 3, 4), np.uint8))
    assert layer_kinds(r) == (LayerKind.MASKS,)
    with pytest.raises(ValueError, match="returned"):
        render_layer(r, "masks")


def test_viewport_sampling_matches_float_reference_and_opencv() -> None:
    full = np.random.default_rng(0).integers(0, 250, (90, 120), dtype=np.uint8)
    for window, out in [((0, 0, 120, 90), (90, 120)), ((10, 5, 110, 85), (40, 50)), ((3, 7, 33, 27), (60, 90)),
                        ((0, 0, 120, 90), (37, 53)), ((17, 4, 18, 5), (3, 3))]:
        vp = Viewport.make(full.shape, window, out)
        got = vp.sample(full)
        assert np.array_equal(got, _nearest(full, window, out))
        x0, y0, x1, y1 = window
        cv = cv2.resize(full[y0:y1, x0:x1], (out[1], out[0]), interpolation=cv2.INTER_NEAREST_EXACT)
        assert (got != cv).mean() < 0.02  # OpenCV's fixed point may round a boundary differently


@pytest.mark.parametrize("kind", ["masks", "semantic"])
def test_window_and_out_size_agree_with_full_render(scenes, kind: str) -> None:
    h, w = 120, 160
    result = scenes.detections(8, h, w, seed=12) if kind == "masks" else scenes.semantic(h, w, seed=12)
    style = RenderStyle(mask_border=2)
    full = render_layer(result, kind, style)
    assert full.shape == (h, w, 4)
    for window, out in [(None, (60, 80)), (None, (47, 203)), ((20, 10, 140, 100), (45, 60)),
                        ((30, 30, 70, 60), (30, 40)), ((30, 30, 70, 60), (120, 160)), ((0, 0, 160, 1), (1, 7))]:
        win = window or (0, 0, w, h)
        got = render_layer(result, kind, style, window=window, out_size=out)
        assert got.shape == (*out, 4)
        assert np.array_equal(got, _nearest(full, win, out)), (window, out)


def test_full_resolution_tile_is_a_crop(scenes) -> None:
    d = scenes.detections(10, 100, 140, seed=13)
    full = render_layer(d, "masks")
    tile = render_layer(d, "masks", window=(50, 25, 114, 89))
    assert np.array_equal(tile, full[25:89, 50:114])


def test_overview_of_a_large_image_without_full_frame_work(scenes) -> None:
    # 3000x4000 image, masks in a corner; overview at 1/10 equals sampling the full render
    from segviewer.core.results import MaskSet

    h, w = 3000, 4000
    small = scenes.blobs(5, 300, 400, seed=14)
    crops = MaskSet.from_full(small)
    ms = MaskSet((h, w), crops.crops, crops.offsets + np.array([3500, 2600], np.int32).clip(0, None))
    boxes = np.array([[o[0], o[1], o[0] + c.shape[1], o[1] + c.shape[0]] for c, o in zip(ms.crops, ms.offsets)])
    d = Detections((h, w), boxes, np.linspace(0.9, 0.5, 5), [1, 2, 3, 4, 1], scenes.CATS, masks=ms)
    over = render_layer(d, "masks", out_size=(300, 400))
    region = render_layer(d, "masks", window=(3500, 2600, 4000, 3000))
    ref = np.zeros((h, w, 4), np.uint8)
    ref[2600:, 3500:] = region
    assert np.array_equal(over, _nearest(ref, (0, 0, w, h), (300, 400)))
    assert (over[..., 3] > 0).any()


def test_boxes_scale_geometrically(scenes) -> None:
    d = Detections((100, 200), [[40, 20, 120, 80]], [0.9], [1], scenes.CATS)
    style = RenderStyle(line_width=1)
    full = render_layer(d, "boxes", style)
    assert full[20, 40:120, 3].all() and full[79, 40:120, 3].all() and full[20:80, 119, 3].all()
    assert not full[21:79, 41:119, 3].any()
    half = render_layer(d, "boxes", style, out_size=(50, 100))
    assert half[10, 20:60, 3].all() and half[10:40, 20, 3].all() and half[39, 20:60, 3].all()
    tile = render_layer(d, "boxes", style, window=(100, 0, 200, 100), out_size=(200, 200))
    assert tile[40, 0:40, 3].all() and tile[159, 0:40, 3].all() and not tile[:, 41:, 3].any()


def test_unknown_result_type_has_no_layers() -> None:
    assert layer_kinds(_Unregistered((4, 4))) == ()
    with pytest.raises(ValueError, match="offers no"):
        render_layer(_Unregistered((4, 4)), "masks")


@dataclass(frozen=True)
class _Unregistered:
    image_size: tuple[int, int]
