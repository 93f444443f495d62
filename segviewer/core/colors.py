"""Deterministic palettes: a color per category, a small jitter per instance.

No random state is involved: the same category index and instance index give the same color
on every run, on screen and in exports. The per-instance jitter follows detectron2's idea (a
small offset of the category color so neighbouring instances of one class differ) but derives
the offset from a hash of the indices rather than an unseeded RNG.
"""

from __future__ import annotations

import colorsys
from functools import lru_cache

import numpy as np

__all__ = [
    "category_color", "category_palette", "color_index", "color_indices", "palette_for", "instance_color", "instance_colors",
    "contrast_text",
]

# Hand-picked, well separated base colors for the first categories (RGB, 0..255). Later
# categories continue with golden-ratio hues so no two neighbours in the list look alike.
_BASE = np.array(
    [
        (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
        (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
        (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
        (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
    ],
    dtype=np.uint8,
)
_GOLDEN = 0.618033988749895

# Names that mean the same thing in different models get the same color: "circle" from the shapes
# Mask R-CNN (detection index 1) and from the shapes FCN (semantic index 4), or "person" from a
# COCO detector and a VOC segmenter. The shapes world comes first so it gets the hand-picked colors.
_VOCABULARY: tuple[str, ...] = (
    "sky", "grass", "water", "road", "circle", "square", "triangle", "star", "ring",
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
    "aeroplane", "diningtable", "motorbike", "pottedplant", "sofa", "tvmonitor",
    "sidewalk", "building", "wall", "fence", "pole", "traffic sign", "vegetation", "terrain", "rider",
)
_VOCAB_INDEX = {name: i for i, name in enumerate(_VOCABULARY)}
_ALIASES = {"aeroplane": "airplane", "diningtable": "dining table", "motorbike": "motorcycle",
            "pottedplant": "potted plant", "sofa": "couch", "tvmonitor": "tv"}


def category_color(index: int) -> tuple[int, int, int]:
    """The base RGB color of category ``index`` (any non-negative integer)."""
    if index < 0:
        raise ValueError(f"category index must be >= 0, got {index}")
    if index < len(_BASE):
        r, g, b = _BASE[index]
        return int(r), int(g), int(b)
    h = (index * _GOLDEN) % 1.0
    s = 0.55 + 0.35 * ((index * 7) % 3) / 2
    v = 0.75 + 0.2 * ((index * 5) % 2)
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def category_palette(n: int) -> np.ndarray:
    """``(n, 3)`` uint8 lookup table of base colors, row i for category i."""
    return np.array([category_color(i) for i in range(n)], dtype=np.uint8).reshape(-1, 3)


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


def instance_color(category: int, instance: int, strength: float = 0.5) -> tuple[int, int, int]:
    """The category color moved by a deterministic offset of length ``strength`` (in 0..1 units).

    Instance 0 of a category is jittered too, so a lone instance and the legend swatch differ
    slightly, as in detectron2; pass ``strength=0`` for the plain category color.
    """
    base = np.array(category_color(category), float) / 255.0
    if strength <= 0:
        return category_color(category)
    vec = _hash_unit(category, instance)
    vec = vec / (np.linalg.norm(vec) + 1e-12) * strength
    res = np.clip(base + vec * 0.5, 0.0, 1.0)
    r, g, b = np.round(res * 255).astype(int)
    return int(r), int(g), int(b)


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
