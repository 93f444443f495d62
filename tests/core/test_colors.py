"""Palettes: CIEDE2000 against the published test data, designed palettes whose classes are far
apart, instance jitter that stays within its class, and the name-based API the renderers use."""

import numpy as np
import pytest

from segviewer.core import colors
from segviewer.core.colors import (
    BACKDROPS,
    LABEL_SPACES,
    category_color,
    category_palette,
    ciede2000,
    color_index,
    color_indices,
    design_palettes,
    instance_color,
    instance_colors,
    lab_to_srgb,
    palette_for,
    srgb_to_lab,
)

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation notes,
# supplementary test data, and mathematical observations", Table 1: L1 a1 b1 L2 a2 b2 dE00.
SHARMA = np.array([
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
])

# The smallest CIEDE2000 between two classes of one model's palette, and from a class to black,
# white or grey. The designed tables reach shapes 30.06 / 29.29, VOC 23.34 / 23.31, COCO 13.62 /
# 14.70, Cityscapes 23.33 / 22.74. The old palette: 14.1 (water/ring), 5.7 (cat/couch),
# 1.2 (surfboard/sink), 3.1 (road/fence).
FLOORS = {"shapes": (30.0, 29.0), "voc": (23.3, 23.0), "coco": (13.6, 13.6), "cityscapes": (23.3, 22.5)}
UNPAINTED = {"__background__", "N/A"}  # transparent in semantic layers, never predicted by detectors


def _min_pairwise(rgb: np.ndarray) -> float:
    lab = srgb_to_lab(np.asarray(rgb))
    d = ciede2000(lab[:, None], lab[None])
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def test_ciede2000_matches_sharma_test_data():
    got = ciede2000(SHARMA[:, :3], SHARMA[:, 3:6])
    assert np.abs(got - SHARMA[:, 6]).max() < 1e-4
    assert np.allclose(ciede2000(SHARMA[:, 3:6], SHARMA[:, :3]), got, atol=1e-12)  # symmetric
    assert np.all(ciede2000(SHARMA[:, :3], SHARMA[:, :3]) == 0)


def test_lab_conversion_known_values_and_round_trip():
    assert np.allclose(srgb_to_lab((255, 255, 255)), (100, 0, 0), atol=1e-3)
    assert np.allclose(srgb_to_lab((0, 0, 0)), (0, 0, 0), atol=1e-9)
    assert np.allclose(srgb_to_lab((255, 0, 0)), (53.2408, 80.0925, 67.2032), atol=1e-2)  # sRGB red
    rgb = np.random.default_rng(0).integers(0, 256, (500, 3))
    assert np.abs(lab_to_srgb(srgb_to_lab(rgb)) - rgb).max() < 1e-6


@pytest.mark.slow
def test_baked_tables_are_what_the_design_gives():
    """About 6 s: the full design with its seeded restarts."""
    named, generic = design_palettes()
    assert np.array_equal(named, colors._NAMED), "palette design changed: regenerate _NAMED_HEX (see colors.py)"
    assert np.array_equal(generic, colors._GENERIC)


@pytest.mark.parametrize("space", sorted(FLOORS))
def test_every_pair_of_a_label_space_is_far_apart(space):
    rgb = palette_for(LABEL_SPACES[space])
    assert len({tuple(c) for c in rgb}) == len(rgb)
    assert _min_pairwise(rgb) >= FLOORS[space][0]
    # and every class keeps clear of the black, white and grey it is drawn against or labelled in
    lab = srgb_to_lab(rgb)
    assert ciede2000(lab[:, None], srgb_to_lab(np.array(BACKDROPS))[None]).min() >= FLOORS[space][1]


def test_water_and_ring_are_distinct():
    """The issue's example: water (yellow) and ring (lime) were 14.1 apart."""
    shapes = LABEL_SPACES["shapes"]
    water, ring = palette_for(shapes)[[shapes.index("water"), shapes.index("ring")]]
    assert ciede2000(srgb_to_lab(water), srgb_to_lab(ring)) >= FLOORS["shapes"][0]


def test_every_listed_model_palette_reaches_its_floor():
    """The label spaces of the cards themselves: bundled shapes models, torchvision's VOC (21) and
    COCO (91, with N/A) categories; aliases (aeroplane, tvmonitor) resolve to the designed names."""
    from segviewer.adapters.registry import list_cards

    seen = set()
    for card in list_cards():
        names = [c for c in card.categories if c not in UNPAINTED]
        if len(names) < 2:
            continue
        key = "shapes" if card.id.startswith("shapes_") else "voc" if len(names) == 20 else "coco"
        assert _min_pairwise(palette_for(names)) >= FLOORS[key][0], card.id
        seen.add((key, len(names)))
    assert {("shapes", 9), ("shapes", 5), ("voc", 20), ("coco", 80)} <= seen


def test_same_name_same_color_across_label_spaces():
    semantic = ("sky", "grass", "water", "road", "circle", "square", "triangle", "star", "ring")
    detection = ("__background__", "circle", "square", "triangle", "star", "ring")
    assert np.array_equal(palette_for(semantic)[4:], palette_for(detection)[1:])
    assert color_index("diningtable", 0) == color_index("dining table", 7)
    voc = ("aeroplane", "person", "tvmonitor")
    coco = ("airplane", "person", "tv")
    assert np.array_equal(palette_for(voc), palette_for(coco))


def test_unknown_names_never_borrow_a_known_color():
    known = {tuple(c) for c in palette_for(("person", "car", "sky", "circle"))}
    unknown = palette_for(("class 1", "class 2", "class 3"))
    assert not known & {tuple(c) for c in unknown}
    # the generic sequence keeps its clearance from every named color, and is spread out itself
    named = srgb_to_lab(colors._NAMED.astype(float))
    generic = srgb_to_lab(colors._GENERIC.astype(float))
    assert ciede2000(generic[:, None], named[None]).min() >= 5.0
    assert _min_pairwise(category_palette(9)) >= 25.0
    assert np.array_equal(category_palette(12), palette_for(tuple(f"class {i}" for i in range(12))))


def test_palette_is_deterministic_and_distinct():
    a, b = category_palette(60), category_palette(60)
    assert np.array_equal(a, b)
    assert len({tuple(c) for c in a}) == 60
    assert category_color(len(colors._NAMED) + 5 + 128) == category_color(len(colors._NAMED) + 5)  # cycles


def _spaces_with_generic() -> list[tuple[str, list[int]]]:
    out = [(name, [color_index(n, 0) for n in names]) for name, names in LABEL_SPACES.items()]
    out.append(("generic", [len(colors._NAMED) + i for i in range(32)]))
    return out


@pytest.mark.parametrize("strength", [0.25, 0.5, 1.0, 3.0])
def test_instance_jitter_stays_nearest_its_own_class(strength):
    """A jittered instance is nearer (CIEDE2000) its own class color than any other class color of
    the label space, for every class of every designed space and of the generic sequence."""
    for space, idx in _spaces_with_generic():
        base = srgb_to_lab(np.array([category_color(i) for i in idx]))
        inst = range(6) if strength != 0.5 else range(6, 16)
        for k, cat in enumerate(idx):
            jit = srgb_to_lab(instance_colors(np.full(len(inst), cat), np.array(inst), strength))
            d = ciede2000(jit[:, None], base[None])
            own = d[:, k].copy()
            d[:, k] = np.inf
            assert np.all(own < d.min(1)), (space, cat)
            assert np.all(own > 0), (space, cat)  # and it does move


def test_instance_jitter_is_small_deterministic_and_varies():
    base = np.array(category_color(3), float)
    cols = instance_colors(np.full(8, 3))
    assert np.array_equal(cols, instance_colors(np.full(8, 3)))
    assert len({tuple(c) for c in cols}) == 8
    assert np.all(np.linalg.norm(cols - base, axis=1) <= 0.25 * 255 * np.sqrt(3) + 1)
    assert instance_color(3, 0, strength=0) == category_color(3)
    coco = color_indices(LABEL_SPACES["coco"])
    assert len({instance_color(int(coco[7]), i) for i in range(8)}) == 8  # distinct even in the densest palette
