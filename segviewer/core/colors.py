"""Deterministic palettes: a color per category, a small jitter per instance.

Every model's classes should be told apart at a glance. The colors are therefore chosen, not
cycled: for each label space the app knows (the shapes world, PASCAL VOC, COCO, Cityscapes) a
greedy max-min search over an sRGB grid, followed by coordinate ascent in RGB, maximises the
smallest CIEDE2000 difference between any two of its classes, with black, white and mid-grey
counted as colors already taken (labels, boundaries and dark or bright photos must not swallow a
class). Spaces are designed in that order; a name shared with an earlier space (``person`` in VOC
and COCO, ``sky`` in the shapes world and Cityscapes) keeps its color, so one class looks the same
in every model's layer, and new colors also keep clear of the colors they will meet in a later
space (COCO's ``car`` of the shapes world's ``road``, both in Cityscapes). Names outside the vocabulary (a user's ``class 3``) take colors from a
generic greedy sequence (each prefix well spread) that stays clear of every named color.

:func:`design_palettes` computes the tables; the module ships its result (``_NAMED_HEX``,
``_GENERIC_HEX``) so importing is instant, and a test checks that the two agree.

The per-instance jitter follows detectron2's idea (a small offset of the category color so
neighbouring instances of one class differ), derived from a hash of the indices rather than an
unseeded RNG, and bounded in CIEDE2000 so a jittered instance stays nearer its own class color
than any other class color of the label spaces it belongs to.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "category_color", "category_palette", "color_index", "color_indices", "palette_for", "instance_color",
    "instance_colors", "contrast_text", "srgb_to_lab", "lab_to_srgb", "ciede2000", "design_palettes",
    "LABEL_SPACES", "BACKDROPS",
]

# The label spaces whose palettes are designed, in design order (names as color_index spells them).
LABEL_SPACES: dict[str, tuple[str, ...]] = {
    "shapes": ("sky", "grass", "water", "road", "circle", "square", "triangle", "star", "ring"),
    "voc": ("airplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "dining table",
            "dog", "horse", "motorcycle", "person", "potted plant", "sheep", "couch", "train", "tv"),
    "coco": (
        "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
        "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
        "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
        "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
        "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
        "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
        "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
        "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
        "scissors", "teddy bear", "hair drier", "toothbrush",
    ),
    "cityscapes": ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                   "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                   "motorcycle", "bicycle"),
}

#: Colors every class keeps its distance from: black, white (label text, panoptic boundaries) and mid-grey.
BACKDROPS: tuple[tuple[int, int, int], ...] = ((0, 0, 0), (255, 255, 255), (128, 128, 128))

# Stuff of the shapes world gets the nearest of its space's designed colors to a familiar one.
_HINTS = {"sky": (135, 206, 250), "grass": (40, 160, 40), "water": (0, 90, 200), "road": (110, 50, 50)}

_VOCABULARY: tuple[str, ...] = tuple(dict.fromkeys(n for names in LABEL_SPACES.values() for n in names))
_VOCAB_INDEX = {name: i for i, name in enumerate(_VOCABULARY)}
_ALIASES = {"aeroplane": "airplane", "diningtable": "dining table", "motorbike": "motorcycle",
            "pottedplant": "potted plant", "sofa": "couch", "tvmonitor": "tv"}

_GENERIC_SIZE = 128
_GENERIC_CLEARANCE = 5.0  # CIEDE2000 a generic color keeps from every named one
_JITTER_REACH = 0.45  # strength 1 moves a color this fraction of the way to its nearest rival


# ---------------------------------------------------------------- color science (sRGB D65, CIELAB)

_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPS, _KAPPA = 216 / 24389, 24389 / 27


def srgb_to_lab(rgb: np.ndarray | tuple[int, int, int]) -> np.ndarray:
    """CIELAB (D65) of sRGB colors in 0..255, shape ``(..., 3)`` -> ``(..., 3)`` float64."""
    c = np.asarray(rgb, np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > _EPS, np.cbrt(xyz), (_KAPPA * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """Inverse of :func:`srgb_to_lab`: float sRGB in 0..255, *not* clipped (out of gamut shows as <0 or >255)."""
    lab = np.asarray(lab, np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    xyz = np.where(f**3 > _EPS, f**3, (116 * f - 16) / _KAPPA) * _WHITE
    lin = xyz @ _XYZ_TO_RGB.T
    c = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * np.abs(lin) ** (1 / 2.4) * np.sign(lin) - 0.055)
    return c * 255.0


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 color difference (kL = kC = kH = 1) of CIELAB colors, broadcasting over ``(..., 3)``.

    Follows Sharma, Wu & Dalal (2005), including their notes on the hue of achromatic colors and the
    mean hue across the 0/360 degree cut; ``tests/core/test_colors.py`` checks their published pairs.
    """
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.where((a1p == 0) & (b1 == 0), 0.0, np.degrees(np.arctan2(b1, a1p)) % 360)
    h2p = np.where((a2p == 0) & (b2 == 0), 0.0, np.degrees(np.arctan2(b2, a2p)) % 360)
    chroma_product = c1p * c2p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(chroma_product == 0, 0.0, dh)
    d_lp, d_cp = L2 - L1, c2p - c1p
    d_hp = 2 * np.sqrt(chroma_product) * np.sin(np.radians(dh / 2))
    l_mean, cp_mean = (L1 + L2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(chroma_product == 0, h_sum,
                      np.where(np.abs(h1p - h2p) <= 180, h_sum / 2,
                               np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2)))
    t = (1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
         + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63)))
    d_theta = 30 * np.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_mean**7 / (cp_mean**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt((d_lp / s_l) ** 2 + (d_cp / s_c) ** 2 + (d_hp / s_h) ** 2 + r_t * (d_cp / s_c) * (d_hp / s_h))


def _nearest(lab: np.ndarray, others: np.ndarray) -> np.ndarray:
    """CIEDE2000 from each of ``lab`` (N, 3) to the nearest of ``others`` (M, 3); inf when M = 0."""
    if len(others) == 0:
        return np.full(len(lab), np.inf)
    return ciede2000(lab[:, None, :], others[None, :, :]).min(1)


# ---------------------------------------------------------------- palette design (offline; result baked below)

def _grid(step: int) -> np.ndarray:
    v = np.unique(np.r_[np.arange(0, 256, step), 255])
    return np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 3)


def _greedy(cand_lab: np.ndarray, n: int, taken_lab: np.ndarray) -> list[int]:
    """Indices of ``n`` candidates picked one by one, each the farthest from everything taken so far."""
    d = _nearest(cand_lab, taken_lab)
    picks = []
    for _ in range(n):
        i = int(np.argmax(d))
        picks.append(i)
        d = np.minimum(d, ciede2000(cand_lab, cand_lab[i]))
    return picks


_STEPS = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) != (0, 0, 0)])


def _ascend(rgb: np.ndarray, fixed_lab: np.ndarray, scales: tuple[int, ...] = (16, 8, 4, 2, 1),
            passes: int = 3) -> np.ndarray:
    """Coordinate ascent: move each color to the RGB neighbour farthest from all the others.

    A move only ever raises the moved color's nearest distance, so the palette's minimum never drops.
    """
    rgb = rgb.astype(np.int64).copy()
    lab = srgb_to_lab(rgb)
    for s in scales:
        for _ in range(passes):
            moved = False
            for k in range(len(rgb)):
                others = np.concatenate([np.delete(lab, k, 0), fixed_lab])
                cand = np.concatenate([rgb[k:k + 1], np.clip(rgb[k] + s * _STEPS, 0, 255)])
                cand_lab = srgb_to_lab(cand)
                score = _nearest(cand_lab, others)
                j = int(np.argmax(score))
                if score[j] > score[0] + 1e-9:
                    rgb[k], lab[k], moved = cand[j], cand_lab[j], True
            if not moved:
                break
    return rgb


def _follow_hints(names: list[str], rgb: np.ndarray) -> np.ndarray:
    """Reorder a designed set of colors so hinted names (sky, grass...) get the nearest to their hint."""
    order = list(range(len(names)))
    free = set(order)
    for k, name in enumerate(names):
        if name in _HINTS:
            d = ciede2000(srgb_to_lab(rgb), srgb_to_lab(_HINTS[name]))
            best = min(free, key=lambda j: (d[j], j))
            free.discard(best)
            order[k] = best
    rest = sorted(free)
    for k, name in enumerate(names):
        if name not in _HINTS:
            order[k] = rest.pop(0)
    return rgb[order]


def _spread(lab: np.ndarray, fixed_lab: np.ndarray) -> float:
    """The smallest CIEDE2000 from a new color to another new one or to a fixed one."""
    d = ciede2000(lab[:, None], np.concatenate([lab, fixed_lab])[None])
    d[np.arange(len(lab)), np.arange(len(lab))] = np.inf
    return float(d.min())


def _design_space(cand: np.ndarray, cand_lab: np.ndarray, n: int, fixed_lab: np.ndarray,
                  restarts: int) -> np.ndarray:
    """``n`` new colors as far from each other and from ``fixed_lab`` as found: greedy max-min on the
    grid, then coordinate ascent; restart ``k > 0`` runs on a seeded random half of the grid (the
    ascent ends in a local optimum, and another start often finds a better one). The best run wins."""
    best, best_score = None, -1.0
    for seed in range(restarts):
        keep = np.ones(len(cand), bool) if seed == 0 else np.random.default_rng(seed).random(len(cand)) < 0.5
        rgb = _ascend(cand[keep][_greedy(cand_lab[keep], n, fixed_lab)], fixed_lab)
        score = _spread(srgb_to_lab(rgb), fixed_lab)
        if score > best_score + 1e-9:
            best, best_score = rgb, score
    assert best is not None
    return best


def design_palettes(step: int = 17, restarts: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Design the palettes from scratch: ``(named, generic)`` uint8 tables.

    ``named[i]`` is the color of ``_VOCABULARY[i]``; ``generic`` the sequence for names outside it.
    Deterministic (seeded restarts; ties go to the first candidate). Several seconds; the module
    uses the baked result.
    """
    cand = _grid(step)
    cand_lab = srgb_to_lab(cand)
    backdrop_lab = srgb_to_lab(np.array(BACKDROPS))
    colors: dict[str, np.ndarray] = {}
    for names in LABEL_SPACES.values():
        new = [n for n in names if n not in colors]
        # Colors already given to names that will share a layer with one of the new names.
        near = {m for space in LABEL_SPACES.values() if set(space) & set(new) for m in space}
        fixed = [colors[n] for n in sorted(near) if n in colors]
        fixed_lab = np.concatenate([srgb_to_lab(np.array(fixed, np.int64).reshape(-1, 3)), backdrop_lab])
        rgb = _design_space(cand, cand_lab, len(new), fixed_lab, restarts)
        for name, c in zip(new, _follow_hints(new, rgb)):
            colors[name] = c
    named = np.array([colors[n] for n in _VOCABULARY], np.uint8)
    clear = _nearest(cand_lab, srgb_to_lab(named)) >= _GENERIC_CLEARANCE
    generic = cand[clear][_greedy(cand_lab[clear], _GENERIC_SIZE, backdrop_lab)].astype(np.uint8)
    return named, generic


def _hex_table(rgb: np.ndarray, per_line: int = 11) -> str:
    """Source text of a baked table (used to regenerate ``_NAMED_HEX`` / ``_GENERIC_HEX``)."""
    items = [f'"{int(r):02x}{int(g):02x}{int(b):02x}",' for r, g, b in rgb]
    return "\n".join("    " + " ".join(items[i:i + per_line]) for i in range(0, len(items), per_line))


# ---------------------------------------------------------------- the baked tables

# Output of design_palettes(), one entry per _VOCABULARY name, then the generic sequence. Regenerate with
#   python -c "from segviewer.core import colors as c; n, g = c.design_palettes(); print(c._hex_table(n)); print(c._hex_table(g))"
_NAMED_HEX: tuple[str, ...] = (
    "00cbba", "25ff00", "0055da", "820b55", "c70b00", "fba200", "ec00ff", "005600", "ff98a4", "fda21c", "ff36ff",
    "e6db00", "005806", "cf4900", "0100ed", "ff9a88", "99a1ff", "4a3700", "010043", "907900", "004b4e", "519d42",
    "ffc0ee", "f30062", "39ff2f", "36c7ff", "6f0800", "7c62a3", "0071b7", "b5b78d", "644939", "02787b", "c7ffba",
    "8a6f80", "4b0018", "3c3c6b", "202f00", "756a4f", "a83dff", "dadaff", "cb0184", "fecda2", "91a8ab", "b59a7c",
    "945653", "ff92ad", "8d9d01", "825703", "fef5c6", "89fdff", "5a74ff", "007951", "4d0080", "1095ff", "0dcf6e",
    "878aac", "b97521", "ff771d", "d998ff", "b7afb4", "516457", "587b00", "ff4e42", "b97760", "c8a521", "7e8a69",
    "a8d156", "644659", "382627", "575b67", "032019", "0c8cb1", "bce1f2", "8d3b02", "4c9885", "3d52c0", "ffd6d4",
    "00b0c1", "ba90b3", "9c0133", "1fffc7", "3d183d", "9128a3", "fb4ea8", "d40125", "172f3e", "b5d8c7", "3c3c33",
    "4e5503", "133c00", "00eb17", "57bbff", "a27500", "00535b", "fffa00", "008c0b", "d24100", "030043",
)
_GENERIC_HEX: tuple[str, ...] = (
    "5511cc", "00cc00", "990000", "eeaa00", "ff88ff", "005522", "00cccc", "ff6644", "dd0077", "0077ff", "550033",
    "776600", "ffff88", "006677", "aabbee", "ffbbbb", "aabb99", "665577", "009966", "002255", "cc00ff", "554433",
    "bb6600", "77ffbb", "22aadd", "996666", "aaaa22", "aa77aa", "003333", "ddbb99", "441100", "667755", "990088",
    "ff6688", "335599", "bbffff", "eeccff", "669999", "333300", "448800", "dd3344", "998855", "9977ff", "bbbbbb",
    "ff8822", "883344", "eeffdd", "007766", "99ff00", "330055", "886644", "002200", "221122", "aa8877", "7755bb",
    "aa99aa", "99ddff", "7788aa", "ee44bb", "663300", "445544", "dd99bb", "77aa55", "66bb99", "aadd88", "aa5533",
    "ffeecc", "333333", "ffaa88", "ffdd00", "224455", "22ffee", "aacccc", "cc8888", "553333", "553377", "446611",
    "bb99dd", "995577", "ddcc77", "bb8822", "3355ff", "ee1100", "7799ff", "999988", "99cc00", "779977", "00ff66",
    "557777", "776666", "555555", "221100", "88aabb", "007733", "888811", "ffeeff", "2288bb", "223399", "774433",
    "ccddee", "00bb66", "008899", "556677", "8822ff", "cc11aa", "cc8855", "444455", "005544", "aaddbb", "000022",
    "bbaa77", "ffddcc", "663355", "00ccee", "222211", "cc66ee", "ddbbcc", "666655", "aa1166", "cc6655", "000088",
    "660022", "006699", "eeaa66", "aa3333", "8877bb", "660066", "cc6688",
)


def _unhex(table: tuple[str, ...]) -> np.ndarray:
    out = np.array([[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in table], np.uint8).reshape(-1, 3)
    out.setflags(write=False)
    return out


_NAMED = _unhex(_NAMED_HEX)
_GENERIC = _unhex(_GENERIC_HEX)


# ---------------------------------------------------------------- public palette API

def category_color(index: int) -> tuple[int, int, int]:
    """The base RGB color of palette index ``index`` (any non-negative integer; see :func:`color_index`).

    Indices below the vocabulary size are named classes; the rest cycle through the generic sequence.
    """
    if index < 0:
        raise ValueError(f"category index must be >= 0, got {index}")
    row = _NAMED[index] if index < len(_NAMED) else _GENERIC[(index - len(_NAMED)) % len(_GENERIC)]
    return int(row[0]), int(row[1]), int(row[2])


def category_palette(n: int) -> np.ndarray:
    """``(n, 3)`` uint8 colors for ``n`` categories known only by their index (keypoints, unnamed
    instances): the generic sequence, the same colors :func:`palette_for` gives ``n`` names outside
    the vocabulary. Any prefix is spread out (greedy max-min); beyond 128 the colors repeat."""
    return np.array([category_color(len(_NAMED) + i) for i in range(n)], dtype=np.uint8).reshape(-1, 3)


def color_index(name: str, fallback: int) -> int:
    """The palette index for a category: shared by name across models, else its own index.

    Known names map into one vocabulary so the same class looks the same in every layer; a name
    outside it (a user's ``class 3``) keeps ``fallback``, offset past the vocabulary so it never
    borrows a known class's color.
    """
    key = _ALIASES.get(name.lower(), name.lower())
    hit = _VOCAB_INDEX.get(key)
    return hit if hit is not None else len(_VOCABULARY) + fallback


@lru_cache(maxsize=256)
def color_indices(categories: tuple[str, ...]) -> np.ndarray:
    """Palette index of each category (see :func:`color_index`); read-only, cached per label space."""
    idx = np.array([color_index(c, i) for i, c in enumerate(categories)], np.int64)
    idx.setflags(write=False)
    return idx


def palette_for(categories: tuple[str, ...] | list[str]) -> np.ndarray:
    """``(n, 3)`` uint8 colors for a model's categories, consistent by name across models."""
    return np.array([category_color(int(i)) for i in color_indices(tuple(categories))],
                    dtype=np.uint8).reshape(-1, 3)


# ---------------------------------------------------------------- instance jitter

@lru_cache(maxsize=1024)
def _neighbourhood(index: int) -> tuple[np.ndarray, float]:
    """``(lab, d)``: CIELAB of the class color then of its rivals, and the CIEDE2000 to the nearest rival.

    Rivals are the other classes of the label spaces the class belongs to; for a generic index, the
    other generic colors among the first 32 (or up to it), the palette of a model with unknown names.
    """
    if index < len(_NAMED):
        name = _VOCABULARY[index]
        others = {n for names in LABEL_SPACES.values() if name in names for n in names} - {name}
        rgb = np.array([_NAMED[_VOCAB_INDEX[n]] for n in sorted(others)]).reshape(-1, 3)
    else:
        k = (index - len(_NAMED)) % len(_GENERIC)
        rgb = np.delete(_GENERIC[:max(32, k + 1)], k, 0)
    lab = srgb_to_lab(np.concatenate([np.array([category_color(index)]), rgb]))
    lab.setflags(write=False)
    return lab, float(_nearest(lab[:1], lab[1:])[0])


def _hash_unit(a: int, b: int) -> np.ndarray:
    """Three numbers in [-1, 1) from two integers, by a fixed integer hash (splitmix64 style)."""
    out = np.empty(3)
    x = (a * 0x9E3779B97F4A7C15 + b * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    for k in range(3):
        x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        z ^= z >> 31
        out[k] = (z / 2**64) * 2 - 1
    return out


@lru_cache(maxsize=65536)
def instance_color(category: int, instance: int, strength: float = 0.5) -> tuple[int, int, int]:
    """The color of palette index ``category`` moved in a direction hashed from ``instance``.

    ``strength`` in [0, 1] scales the move up to 0.45 of the CIEDE2000 distance from the class
    color to its nearest rival (another class of the same label spaces), so the jittered color is
    always nearer its own class color than any rival's: checked after rounding, the move halves
    until it holds. Instance 0 is jittered too, so a lone instance and the legend swatch differ
    slightly, as in detectron2; pass ``strength=0`` for the plain category color.
    """
    base = category_color(category)
    if strength <= 0:
        return base
    known, nearest = _neighbourhood(category)
    base_lab = known[0]
    reach = _JITTER_REACH * min(float(strength), 1.0) * nearest
    direction = _hash_unit(category, instance)
    direction /= np.linalg.norm(direction) + 1e-12
    # CIEDE2000 is not linear in Lab: scale a unit step so the move measures about `reach`.
    scale = reach / max(float(ciede2000(base_lab, base_lab + direction)), 1e-6)
    for _ in range(12):
        for step in (direction * scale, -direction * scale):  # the other way when clipping to sRGB ate the move
            rgb = np.clip(np.round(lab_to_srgb(base_lab + step)), 0, 255).astype(np.int64)
            d = ciede2000(srgb_to_lab(rgb), known)  # d[0]: to its own class color, d[1:]: to the rivals
            moved = (int(rgb[0]), int(rgb[1]), int(rgb[2]))
            if moved != base and d[0] <= reach * 1.05 and (len(d) == 1 or d[0] < d[1:].min()):
                return moved
        scale /= 2
    return base


def instance_colors(class_ids: np.ndarray, instance_ids: np.ndarray | None = None,
                    strength: float = 0.5) -> np.ndarray:
    """``(N, 3)`` uint8 colors for N instances; ``instance_ids`` defaults to 0..N-1."""
    cls = np.asarray(class_ids, np.int64).ravel()
    ids = np.arange(len(cls)) if instance_ids is None else np.asarray(instance_ids, np.int64).ravel()
    return np.array([instance_color(int(c), int(i), strength) for c, i in zip(cls, ids)],
                    dtype=np.uint8).reshape(-1, 3)


def contrast_text(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``rgb`` (relative luminance threshold)."""
    r, g, b = rgb
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)
