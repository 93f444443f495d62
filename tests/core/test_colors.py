import numpy as np

from segviewer.core.colors import (
    category_color,
    category_palette,
    color_index,
    instance_color,
    instance_colors,
    palette_for,
)


def test_palette_is_deterministic_and_distinct():
    a, b = category_palette(60), category_palette(60)
    assert np.array_equal(a, b)
    assert len({tuple(c) for c in a[:20]}) == 20


def test_same_name_same_color_across_label_spaces():
    semantic = ("sky", "grass", "water", "road", "circle", "square", "triangle", "star", "ring")
    detection = ("__background__", "circle", "square", "triangle", "star", "ring")
    assert np.array_equal(palette_for(semantic)[4:], palette_for(detection)[1:])
    assert color_index("diningtable", 0) == color_index("dining table", 7)


def test_unknown_names_never_borrow_a_known_color():
    known = {tuple(c) for c in palette_for(("person", "car", "sky", "circle"))}
    unknown = palette_for(("class 1", "class 2", "class 3"))
    assert not known & {tuple(c) for c in unknown}


def test_instance_jitter_is_small_deterministic_and_varies():
    base = np.array(category_color(3), float)
    cols = instance_colors(np.full(8, 3))
    assert np.array_equal(cols, instance_colors(np.full(8, 3)))
    assert len({tuple(c) for c in cols}) == 8
    assert np.all(np.linalg.norm(cols - base, axis=1) <= 0.25 * 255 * np.sqrt(3) + 1)
    assert instance_color(3, 0, strength=0) == category_color(3)
