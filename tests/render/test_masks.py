"""Mask layer: exact border colors, score order, deterministic palette, compact memory use."""

from __future__ import annotations

import tracemalloc

import numpy as np

from segviewer.core.colors import color_index, color_indices, instance_color
from segviewer.core.results import Detections, MaskSet
from segviewer.render import LayerKind, RenderStyle, render_layer, render_overlay
from segviewer.render.style import detection_colors


def _one(mask: np.ndarray, cls: int = 2, score: float = 0.9) -> Detections:
    ms = MaskSet.from_full(mask[None])
    return Detections(mask.shape, [[0, 0, 1, 1]], [score], [cls], ("bg", "a", "b"), masks=ms)


def _border_reference(mask: np.ndarray, width: int) -> np.ndarray:
    """Mask pixels within ``width`` (8-neighbour steps) of a non-mask pixel or the image edge."""
    inner = mask.copy()
    for _ in range(width):
        p = np.pad(inner, 1, constant_values=False)
        nb = np.ones_like(inner)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                nb &= p[1 + dy:1 + dy + inner.shape[0], 1 + dx:1 + dx + inner.shape[1]]
        inner = nb
    return mask & ~inner


def test_border_has_exactly_the_expected_colors() -> None:
    mask = np.zeros((40, 50), bool)
    yy, xx = np.mgrid[0:40, 0:50]
    mask[((yy - 20) / 12.0) ** 2 + ((xx - 22) / 17.0) ** 2 <= 1] = True
    mask[0:6, 40:50] = True  # a second blob touching the image edge
    for width in (1, 2):
        style = RenderStyle(mask_border=width, mask_alpha=0.4)
        layer = render_layer(_one(mask), LayerKind.MASKS, style)
        color = list(instance_color(color_index("b", 2), 0, style.instance_jitter))
        border = _border_reference(mask, width)
        assert border.any() and (mask & ~border).any()
        assert (layer[border] == color + [255]).all()
        assert (layer[mask & ~border] == color + [style.mask_alpha_u8]).all()
        assert (layer[~mask] == 0).all()
        colors = {tuple(v) for v in layer.reshape(-1, 4)}
        assert colors == {(0, 0, 0, 0), (*color, 255), (*color, style.mask_alpha_u8)}


def test_no_border_means_two_colors() -> None:
    mask = np.zeros((20, 20), bool)
    mask[5:15, 3:12] = True
    layer = render_layer(_one(mask), "masks", RenderStyle(mask_border=0))
    assert len({tuple(v) for v in layer.reshape(-1, 4)}) == 2


def test_higher_score_is_on_top() -> None:
    a = np.zeros((30, 30), bool)
    a[2:20, 2:20] = True
    b = np.zeros((30, 30), bool)
    b[10:28, 10:28] = True
    style = RenderStyle(mask_border=0, instance_jitter=0.0)
    for scores, top in (([0.9, 0.3], 1), ([0.2, 0.8], 2)):
        d = Detections((30, 30), [[2, 2, 20, 20], [10, 10, 28, 28]], scores, [1, 2], ("bg", "a", "b"),
                       masks=MaskSet.from_full(np.stack([a, b])))
        layer = render_layer(d, "masks", style)
        assert layer[15, 15, :3].tolist() == list(instance_color(color_index("ab"[top - 1], top), 0, 0.0))
    # equal scores: the detector's order decides (lower index on top)
    d = Detections((30, 30), [[2, 2, 20, 20], [10, 10, 28, 28]], [0.5, 0.5], [1, 2], ("bg", "a", "b"),
                   masks=MaskSet.from_full(np.stack([a, b])))
    assert render_layer(d, "masks", style)[15, 15, :3].tolist() == list(instance_color(color_index("a", 1), 0, 0.0))


def test_palette_is_deterministic_and_jitters_neighbours(scenes) -> None:
    d = scenes.detections(8, 64, 64, seed=9)
    style = RenderStyle()
    c1 = detection_colors(d, style)
    c2 = detection_colors(d.select(np.arange(len(d))), RenderStyle())
    assert np.array_equal(c1, c2)
    cidx = color_indices(d.categories)
    assert [tuple(c) for c in c1] == [instance_color(int(cidx[k]), i, style.instance_jitter)
                                      for i, k in enumerate(d.class_ids)]
    three = Detections((8, 8), np.zeros((3, 4)), [0.5] * 3, [1, 1, 1], ("bg", "a"))
    same = detection_colors(three, style)
    assert len({tuple(c) for c in same}) == 3  # three instances of one class, three colors
    plain = detection_colors(three, RenderStyle(instance_jitter=0.0))
    assert (plain[0] == plain[1]).all()
    assert np.array_equal(render_layer(d, "masks"), render_layer(d, "masks"))


def test_layer_is_straight_alpha(scenes) -> None:
    d = scenes.detections(5, 64, 64, seed=10)
    layer = render_layer(d, "masks", RenderStyle(mask_alpha=0.2))
    colors = {tuple(c) for c in detection_colors(d, RenderStyle())}
    drawn = layer[layer[..., 3] > 0]
    assert {tuple(v[:3]) for v in drawn} <= colors  # colors not multiplied by alpha


def test_empty_masks_and_no_detections(scenes) -> None:
    full = np.zeros((2, 20, 20), bool)
    full[1, 3:6, 3:6] = True
    d = Detections((20, 20), [[0, 0, 1, 1], [3, 3, 6, 6]], [0.9, 0.8], [1, 1], ("bg", "a"),
                   masks=MaskSet.from_full(full))
    layer = render_layer(d, "masks")
    assert (layer[..., 3] > 0).sum() == 9
    img = scenes.image(20, 20)
    assert np.array_equal(render_overlay(img, [d.select(np.array([0]))], {"masks": 1.0}), img)
    none = d.select(np.zeros(2, bool))
    assert (render_layer(none, "masks") == 0).all()


def test_export_keeps_masks_compact(scenes) -> None:
    # 60 masks on 256x256: N full-frame bool arrays alone would be 60 * 64 KiB = 3.8 MiB
    h = w = 256
    d = scenes.detections(60, h, w, seed=11)
    img = scenes.image(h, w)
    render_overlay(img, [d], {"masks": 1.0})  # warm caches and scratch buffers
    tracemalloc.start()
    render_overlay(img, [d], {"masks": 1.0, "boxes": 1.0, "labels": 1.0})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * h * w * 3, peak


def test_heavily_overlapping_masks_blend_once_with_the_top_instance(monkeypatch) -> None:
    """Large overlapping masks take the direct path's snapshot variant (lowest rank painted
    first from untouched pixels, higher ones overwrite): the result equals compositing the
    layer, and equals the lookup path, for outlines of any width and any opacity."""
    import segviewer.render.masks as masks_mod
    from segviewer.render.compose import compose

    rng = np.random.default_rng(3)
    h, w, n = 90, 120, 12
    yy, xx = np.mgrid[0:h, 0:w]
    full = np.zeros((n, h, w), bool)
    for i in range(n):  # big ellipses, most of the frame each, overlapping everywhere
        cy, cx, ry, rx = rng.uniform(20, 70), rng.uniform(20, 100), rng.uniform(25, 45), rng.uniform(30, 60)
        full[i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    ms = MaskSet.from_full(full)
    boxes = np.array([[o[0], o[1], o[0] + c.shape[1], o[1] + c.shape[0]] for c, o in zip(ms.crops, ms.offsets)],
                     np.float32)
    dets = Detections((h, w), boxes, rng.random(n).astype(np.float32), rng.integers(1, 3, n), ("bg", "a", "b"),
                      masks=ms)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    asked: list[str] = []
    real = masks_mod.scratch

    def spy(name, shape, dtype):
        asked.append(name)
        return real(name, shape, dtype)

    monkeypatch.setattr(masks_mod, "scratch", spy)
    for border in (0, 1, 2):
        style = RenderStyle(mask_border=border, mask_alpha=0.35)
        for o in (1.0, 0.45):
            direct, lut = img.copy(), img.copy()
            masks_mod.blend_masks(direct, dets, o, style, method="direct")
            masks_mod.blend_masks(lut, dets, o, style, method="lut")
            ref = compose(img, [(render_layer(dets, LayerKind.MASKS, style), o)])
            assert np.abs(direct.astype(int) - ref).max() <= 1, (border, o)
            assert np.abs(direct.astype(int) - lut).max() <= 1, (border, o)
    assert "source" in asked, "these masks overlap enough for the snapshot variant"


def test_painted_labels_are_the_top_instance_in_every_window_and_label_width() -> None:
    """The label image (``2 * rank + 1`` interior, ``+ 1`` border) equals a per-pixel maximum
    computed from full masks, for the full frame, a window cut through masks, and both label
    widths (uint8 with up to 127 masks, wider above): full-resolution painting without outlines
    sets labels in rank order, the others take maxima; both must give the top instance."""
    from segviewer.render.layers import Viewport
    from segviewer.render.masks import paint_mask_labels, ranks

    rng = np.random.default_rng(11)
    h, w = 70, 90
    yy, xx = np.mgrid[0:h, 0:w]
    for n in (9, 140):
        full = np.zeros((n, h, w), bool)
        for i in range(n):
            cy, cx, ry, rx = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 30), rng.uniform(4, 40)
            full[i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        ms = MaskSet.from_full(full)
        rank = ranks(rng.random(n).astype(np.float32))
        for border in (0, 1):
            ref = np.zeros((h, w), np.int64)
            for i in range(n):
                lab = np.where(full[i], 2 * rank[i] + 1, 0)
                if border:
                    lab = np.where(_border_reference(full[i], border) & full[i], 2 * rank[i] + 2, lab)
                ref = np.maximum(ref, lab)
            for window in (None, (13, 7, 61, 52)):
                vp = Viewport.make((h, w), window)
                got = paint_mask_labels(ms, rank, vp, border)
                x0, y0, x1, y1 = window or (0, 0, w, h)
                assert np.array_equal(got.astype(np.int64), ref[y0:y1, x0:x1]), (n, border, window)
