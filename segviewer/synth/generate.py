"""``generate_scene``: one seeded shapes-world image with complete ground truth, in a few ms.

Designed to be learnable to a high standard: crisp label edges (masks from integer polygons,
pixels painted from exactly those masks), saturated things over duller textured stuff, partial
occlusion only (every thing keeps >= ``min_visible`` of its area and >= ``min_pixels`` pixels),
object areas spread over COCO's small / medium / large ranges with few tiny ones.
"""

from __future__ import annotations

import math

import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.synth.classes import CATEGORIES, THINGS
from segviewer.synth.scene import Scene, SceneInstance
from segviewer.synth.shapes import UNIT_AREA, Pose, paint, random_style, rasterize
from segviewer.synth.stuff import stuff_image, stuff_labels, unit_noise

__all__ = ["generate_scene", "SIZE_RANGES", "DEFAULTS"]

THING_IDS = tuple(CATEGORIES.index(t) for t in THINGS)

#: COCO area ranges (pixels): small < 32^2 <= medium < 96^2 <= large. The generator draws a
#: target area log-uniformly inside the chosen range (the lower small bound keeps tiny ones rare).
SIZE_RANGES = {"small": (220.0, 1024.0), "medium": (1024.0, 9216.0), "large": (9216.0, 40000.0)}

DEFAULTS: dict[str, object] = {
    "n_things": (1, 8),  # inclusive range of things attempted
    "size_probs": (0.3, 0.45, 0.25),  # small, medium, large
    "max_area_frac": 0.25,  # no thing larger than this fraction of the image
    "min_visible": 0.6,  # visible fraction of a thing's own area (occlusion and frame border)
    "min_pixels": 40,
    "p_touch": 0.3,  # chance a thing is placed against an earlier one
    "p_sky": 0.9,
    "p_road_band": 0.45,
    "noise": 2.0,  # sensor noise sigma (grey levels) over the whole image
    "tries": 25,
}


def _options(options: dict[str, object]) -> dict[str, object]:
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise SegviewerError(f"unknown scene option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    return {**DEFAULTS, **options}


def _target_area(rng: np.random.Generator, h: int, w: int, opt: dict) -> float:
    cap = float(opt["max_area_frac"]) * h * w
    ranges = [(lo, min(hi, cap)) for lo, hi in SIZE_RANGES.values()]
    probs = np.array([p if lo < hi else 0.0 for p, (lo, hi) in zip(opt["size_probs"], ranges)])
    if probs.sum() <= 0:  # a very small image: anything that fits
        return float(rng.uniform(min(64.0, cap), max(cap, 64.0)))
    lo, hi = ranges[int(rng.choice(3, p=probs / probs.sum()))]
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _place(rng: np.random.Generator, h: int, w: int, radius: float, placed: list[Pose],
           p_touch: float) -> tuple[float, float]:
    """A centre: free, or against an earlier thing (circumradii just touching, slightly overlapping)."""
    if placed and rng.random() < p_touch:
        other = placed[int(rng.integers(len(placed)))]
        d = (other.radius + radius) * rng.uniform(0.75, 1.0)
        a = rng.uniform(0, 2 * math.pi)
        return other.cx + d * math.cos(a), other.cy + d * math.sin(a)
    m = 0.5 * radius
    return float(rng.uniform(-m, w + m)), float(rng.uniform(-m, h + m))


def generate_scene(seed: int, size: tuple[int, int] = (256, 256), **options: object) -> Scene:
    """A scene of ``size = (H, W)`` fully determined by ``seed`` and ``options`` (see ``DEFAULTS``).

    Instances come back to front with ids 1..N; their masks are the visible pixels and do not
    overlap. ``semantic`` is stuff everywhere except under things (no void).
    """
    h, w = (int(v) for v in size)
    if h < 16 or w < 16:
        raise SegviewerError(f"scene size must be at least 16x16 pixels, got {h}x{w}")
    opt = _options(options)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, 0x5EED])
    semantic = stuff_labels(rng, h, w, float(opt["p_sky"]), float(opt["p_road_band"]))
    image = stuff_image(rng, semantic)

    lo_n, hi_n = opt["n_things"]
    n_want = int(rng.integers(int(lo_n), int(hi_n) + 1))
    styles = [random_style(rng, int(rng.choice(THING_IDS))) for _ in range(n_want)]
    areas = sorted((_target_area(rng, h, w, opt) for _ in range(n_want)), reverse=True)

    owner = np.zeros((h, w), np.int16)  # 0 = stuff, k = k-th placed thing
    visible: list[int] = []  # visible pixels per placed thing
    full: list[int] = []  # whole-shape pixels (incl. hidden and out of frame)
    inframe: list[int] = []
    poses: list[Pose] = []
    kept_styles = []
    min_vis, min_px = float(opt["min_visible"]), int(opt["min_pixels"])
    for style, area in zip(styles, areas):
        for attempt in range(int(opt["tries"])):
            a = area * (0.85 ** (attempt // 8))  # shrink a little if it keeps failing
            radius = math.sqrt(a / UNIT_AREA(style))
            cx, cy = _place(rng, h, w, radius, poses, float(opt["p_touch"]))
            pose = Pose(cx, cy, radius, float(rng.uniform(0, 2 * math.pi)))
            crop, x0, y0 = rasterize(style, pose)
            total = int(crop.sum())
            ya, yb, xa, xb = max(y0, 0), min(y0 + crop.shape[0], h), max(x0, 0), min(x0 + crop.shape[1], w)
            if ya >= yb or xa >= xb:
                continue
            sub = crop[ya - y0 : yb - y0, xa - x0 : xb - x0]
            n_in = int(sub.sum())
            if n_in < max(min_px, min_vis * total):
                continue
            hidden = np.bincount(owner[ya:yb, xa:xb][sub], minlength=len(poses) + 1)[1:]
            if any(v - d < max(min_px, min_vis * f) for v, d, f in zip(visible, hidden, full) if d):
                continue
            break
        else:
            continue
        k = len(poses) + 1
        for j, d in enumerate(hidden):
            visible[j] -= int(d)
        owner[ya:yb, xa:xb][sub] = k
        tex = paint(style, pose, x0, y0, crop.shape[0], crop.shape[1], crop)
        image[ya:yb, xa:xb][sub] = tex[ya - y0 : yb - y0, xa - x0 : xb - x0][sub]
        poses.append(pose)
        kept_styles.append(style)
        visible.append(n_in)
        full.append(total)
        inframe.append(n_in)

    if float(opt["noise"]) > 0:
        image += unit_noise(rng, h, w)[..., None] * np.float32(opt["noise"])
    image = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    instances = []
    for k, (style, pose) in enumerate(zip(kept_styles, poses), start=1):
        mask = owner == k
        semantic[mask] = style.category
        instances.append(SceneInstance(style.category, mask, k, full_area=full[k - 1],
                                       inframe_area=inframe[k - 1], pose=pose))
    return Scene(image, semantic, tuple(instances), int(seed))
