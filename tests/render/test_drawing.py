"""Boxes, labels, keypoints and semantic layers."""

from __future__ import annotations

import numpy as np

from segviewer.core.colors import category_palette, contrast_text, palette_for
from segviewer.core.results import Detections, SemanticMap
from segviewer.render import RenderStyle, render_layer, render_overlay
from segviewer.render.labels import label_texts, text_size
from segviewer.render.style import detection_colors

CATS = ("__background__", "circle", "square")


def _dets(**kw) -> Detections:
    return Detections((120, 160), [[30.4, 50.2, 90.0, 100.0], [100.0, 10.0, 150.5, 40.0]], [0.93, 0.41],
                      [1, 2], CATS, **kw)


def test_box_outline_inside_the_box_with_line_width() -> None:
    d = _dets()
    style = RenderStyle(line_width=3)
    layer = render_layer(d, "boxes", style)
    color = detection_colors(d, style)[0].tolist()
    # box 0 covers pixels x 30..89, y 50..99; its outline is the 3-pixel band inside
    band = np.zeros((120, 160), bool)
    band[50:100, 30:90] = True
    band[53:97, 33:87] = False
    assert (layer[band][:, :3] == color).all() and (layer[band][:, 3] == 255).all()
    assert not layer[53:97, 33:87, 3].any()
    assert set(np.unique(layer[..., 3]).tolist()) == {0, 255}


def test_labels_text_tag_and_contrast() -> None:
    d = _dets()
    style = RenderStyle()
    assert label_texts(d, style) == ["circle 0.93", "square 0.41"]
    assert label_texts(d, RenderStyle(show_scores=False)) == ["circle", "square"]
    layer = render_layer(d, "labels", style)
    assert set(np.unique(layer[..., 3]).tolist()) == {0, 255}  # text lands on opaque tags only
    tw, th, base = text_size("circle 0.93", style.font_scale, style.font_thickness)
    gw, gh = tw + 2 * style.label_padding, th + base + 2 * style.label_padding
    tag = layer[50 - gh:50, 30:30 + gw]  # above box 0's top-left corner
    assert (tag[..., 3] == 255).all()
    bg = detection_colors(d, style)[0]
    fg = contrast_text(tuple(int(v) for v in bg))
    px = {tuple(v) for v in tag[..., :3].reshape(-1, 3)}
    assert tuple(bg) in px and fg in px  # tag color and text color both present
    assert not layer[50:, 30 + gw:90, 3].any()
    # box 1 has no room above (y0 = 10 < tag height): its tag goes inside the box
    assert (layer[10:10 + gh, 100:100 + 10, 3] == 255).all()


def test_keypoints_hidden_below_threshold() -> None:
    kp = np.array([[[40, 60, 1.0], [80, 60, 1.0], [80, 90, -1.0]], [[0, 0, 0], [0, 0, 0], [0, 0, 0]]], np.float32)
    d = _dets(keypoints=kp, keypoint_names=("a", "b", "c"), skeleton=((0, 1), (1, 2)))
    style = RenderStyle(keypoint_radius=2, line_width=1)
    layer = render_layer(d, "keypoints", style)
    line = detection_colors(d, style)[0].tolist()
    assert layer[60, 60, :3].tolist() == line  # skeleton 0-1 drawn
    assert layer[60, 40, :3].tolist() == category_palette(1)[0].tolist()  # keypoint dot colored by index
    assert not layer[75, 80, 3] and not layer[90, 80, 3]  # hidden keypoint c, no edge 1-2
    assert not layer[0:3, 0:3, 3].any()  # detection 1's keypoints all hidden
    assert set(np.unique(layer[..., 3]).tolist()) == {0, 255}


def cc(categories: tuple[str, ...], k: int) -> tuple[int, int, int]:
    """The color the renderer gives category k of this label space (colors follow class names)."""
    r, g, b = palette_for(categories)[k]
    return int(r), int(g), int(b)


def test_semantic_colors_transparent_classes_and_ignore() -> None:
    lab = np.array([[0, 1, 2], [255, 1, 0]], np.uint8)
    sem = SemanticMap(lab, CATS, ignore_index=255)
    layer = render_layer(sem, "semantic")
    assert layer[0, 1].tolist() == [*cc(CATS, 1), 255]
    assert layer[0, 2].tolist() == [*cc(CATS, 2), 255]
    assert layer[0, 0, 3] == 0 and layer[1, 0, 3] == 0  # __background__ and ignore stay clear
    opaque_bg = render_layer(sem, "semantic", RenderStyle(transparent_classes=frozenset()))
    assert opaque_bg[0, 0].tolist() == [*cc(CATS, 0), 255]
    img = np.full((2, 3, 3), 100, np.uint8)
    out = render_overlay(img, [sem], {"semantic": 0.5})
    assert out[1, 0].tolist() == [100, 100, 100]
    assert np.abs(out[0, 1].astype(int) - (100 + np.array(cc(CATS, 1))) / 2).max() <= 0.5


def test_semantic_with_many_classes_uses_wide_labels() -> None:
    cats = tuple(f"c{i}" for i in range(300))
    lab = np.arange(12, dtype=np.int32).reshape(3, 4) * 25
    sem = SemanticMap(lab, cats)
    layer = render_layer(sem, "semantic")
    assert layer[2, 3].tolist() == [*cc(cats, 275), 255]
    out = render_overlay(np.zeros((3, 4, 3), np.uint8), [sem], {"semantic": 1.0})
    assert out[2, 3].tolist() == list(cc(cats, 275))
