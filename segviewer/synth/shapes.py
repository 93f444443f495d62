"""Things of the shapes world: a class, a unit outline, a look, and a pose that places them.

A thing is drawn twice from one rasterisation: its mask comes from ``cv2.fillPoly`` on rounded
(integer) vertices, so label maps have crisp, anti-aliasing-free edges, and its pixels are
painted only where that mask is set. The texture is a function of *object* coordinates (smooth
sinusoids, no per-pixel noise), so a moving thing carries its texture with it and the ground-truth
flow of the video generator is exact for its pixels.

Coordinates follow ``segviewer.core.results``: pixel ``(row, col)`` covers ``[col, col + 1)``,
its centre is ``(col + 0.5, row + 0.5)``. A pose's centre is in these continuous coordinates.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import cv2
import numpy as np

from segviewer.synth.classes import CATEGORIES, THINGS

__all__ = ["ThingStyle", "Pose", "UNIT_AREA", "random_style", "outlines", "rasterize", "paint"]

_CIRCLE, _SQUARE, _TRIANGLE, _STAR, _RING = (CATEGORIES.index(t) for t in THINGS)

# Stuff colours (RGB; sky top and horizon, grass, water, road) a thing colour must stay away
# from, so things stand out against whatever is behind them.
_STUFF_COLORS = np.array([(95, 150, 225), (185, 212, 240), (75, 140, 55), (45, 105, 150), (105, 105, 110)], float)


@dataclass(frozen=True)
class ThingStyle:
    """Everything about a thing that does not change as it moves."""

    category: int  # CATEGORIES index (a thing)
    color: tuple[float, float, float]  # RGB 0..255
    inner: float  # star: inner/outer radius; ring: hole/outer radius; else unused
    texture: int  # 0 plain shading, 1 stripes, 2 checker
    tex_freq: float  # pattern cycles per unit radius
    tex_angle: float  # pattern orientation (radians, object frame)
    shade: tuple[float, float]  # linear shading direction * strength (object frame)
    waves: tuple[tuple[float, float, float, float], ...]  # (kx, ky, phase, amp) soft mottling
    rim: float  # darkening of the 1-2 px rim (fraction), drawn inside the mask


@dataclass(frozen=True)
class Pose:
    """Where a thing is: centre (x, y) in continuous pixels, circumradius in pixels, angle in radians."""

    cx: float
    cy: float
    radius: float
    angle: float


def _unit_area(category: int, inner: float) -> float:
    """Area of the outline at circumradius 1 (used to turn a target area into a radius)."""
    if category == _CIRCLE:
        return math.pi
    if category == _SQUARE:
        return 2.0
    if category == _TRIANGLE:
        return 3 * math.sqrt(3) / 4
    if category == _STAR:
        return 5 * inner * math.sin(math.pi / 5)
    if category == _RING:
        return math.pi * (1 - inner * inner)
    raise ValueError(f"{CATEGORIES[category]!r} is not a thing")


def UNIT_AREA(style: ThingStyle) -> float:  # noqa: N802 - reads as a constant of the style
    """Area per squared circumradius of ``style``'s outline."""
    return _unit_area(style.category, style.inner)


def _thing_color(rng: np.random.Generator) -> tuple[float, float, float]:
    """A saturated, bright colour not too close to any stuff colour (so things stay learnable)."""
    for _ in range(20):
        r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.7, 1.0), rng.uniform(0.8, 1.0))
        c = np.array([r, g, b]) * 255
        if np.min(np.linalg.norm(_STUFF_COLORS - c, axis=1)) > 90:
            break
    return float(c[0]), float(c[1]), float(c[2])


def random_style(rng: np.random.Generator, category: int) -> ThingStyle:
    """A random look for a thing of ``category``."""
    if category == _STAR:
        inner = float(rng.uniform(0.42, 0.55))
    elif category == _RING:
        inner = float(rng.uniform(0.45, 0.62))
    else:
        inner = 0.0
    a = rng.uniform(0, 2 * math.pi)
    s = rng.uniform(0.05, 0.18)
    waves = tuple(
        (float(rng.normal(0, 3)), float(rng.normal(0, 3)), float(rng.uniform(0, 2 * math.pi)),
         float(rng.uniform(2, 6)))
        for _ in range(2)
    )
    return ThingStyle(
        category=category,
        color=_thing_color(rng),
        inner=inner,
        texture=int(rng.choice(3, p=(0.5, 0.3, 0.2))),
        tex_freq=float(rng.uniform(1.5, 3.5)),
        tex_angle=float(rng.uniform(0, math.pi)),
        shade=(float(s * math.cos(a)), float(s * math.sin(a))),
        waves=waves,
        rim=float(rng.uniform(0.0, 0.3)),
    )


def outlines(style: ThingStyle, pose: Pose) -> tuple[np.ndarray, np.ndarray | None]:
    """The outer polygon and (ring only) the hole polygon, as float (K, 2) arrays of (x, y)."""
    cat, r = style.category, pose.radius
    if cat in (_CIRCLE, _RING):
        k = max(24, int(2 * math.pi * r / 2.5))
        t = np.arange(k) * (2 * math.pi / k) + pose.angle
        unit = np.stack([np.cos(t), np.sin(t)], 1)
        outer = unit * r
        hole = unit * (r * style.inner) if cat == _RING else None
    else:
        if cat == _SQUARE:
            t = np.arange(4) * (math.pi / 2) + math.pi / 4
            rad = np.ones(4)
        elif cat == _TRIANGLE:
            t = np.arange(3) * (2 * math.pi / 3) - math.pi / 2
            rad = np.ones(3)
        else:  # star: 5 points, alternating radii
            t = np.arange(10) * (math.pi / 5) - math.pi / 2
            rad = np.where(np.arange(10) % 2 == 0, 1.0, style.inner)
        t = t + pose.angle
        outer = np.stack([np.cos(t) * rad, np.sin(t) * rad], 1) * r
        hole = None
    c = np.array([pose.cx, pose.cy])
    return outer + c, (None if hole is None else hole + c)


def rasterize(style: ThingStyle, pose: Pose) -> tuple[np.ndarray, int, int]:
    """The thing's whole mask (unclipped) as a boolean crop and its top-left pixel (x0, y0).

    Vertices are rounded to pixel indices (continuous x -> index round(x - 0.5)) and filled
    without anti-aliasing, so the mask is exactly what the label maps and the image use.
    """
    outer, hole = outlines(style, pose)
    po = np.rint(outer - 0.5).astype(np.int32)
    x0, y0 = po.min(0)
    x1, y1 = po.max(0)
    crop = np.zeros((int(y1 - y0 + 1), int(x1 - x0 + 1)), np.uint8)
    cv2.fillPoly(crop, [po - (x0, y0)], 1, lineType=cv2.LINE_8)
    if hole is not None:
        ph = np.rint(hole - 0.5).astype(np.int32)
        cv2.fillPoly(crop, [ph - (x0, y0)], 0, lineType=cv2.LINE_8)
    return crop.astype(bool), int(x0), int(y0)


def paint(style: ThingStyle, pose: Pose, x0: int, y0: int, h: int, w: int,
          mask: np.ndarray | None = None) -> np.ndarray:
    """RGB float32 ``(h, w, 3)`` texture of the thing over the pixel block at (x0, y0).

    The texture is evaluated at pixel centres mapped into the object frame, so it moves, turns
    and scales with the pose. ``mask`` (same block) enables the darker rim along its border.
    """
    xs = (np.arange(w, dtype=np.float32) + (x0 + 0.5 - pose.cx)) / pose.radius
    ys = (np.arange(h, dtype=np.float32) + (y0 + 0.5 - pose.cy)) / pose.radius
    ca, sa = math.cos(-pose.angle), math.sin(-pose.angle)
    u = ca * xs[None, :] - sa * ys[:, None]  # object-frame coordinates, radius 1
    v = sa * xs[None, :] + ca * ys[:, None]
    f = 1.0 + style.shade[0] * u + style.shade[1] * v
    if style.texture:
        ct, st = math.cos(style.tex_angle), math.sin(style.tex_angle)
        p = style.tex_freq * math.pi
        a = np.sin(p * (ct * u + st * v))
        if style.texture == 2:
            a = a * np.sin(p * (-st * u + ct * v))
        f = f + 0.09 * np.tanh(3 * a)
    img = np.empty((h, w, 3), np.float32)
    for ch in range(3):
        img[..., ch] = style.color[ch] * f
    mott = np.zeros((h, w), np.float32)
    for kx, ky, ph, amp in style.waves:
        mott += amp * np.sin(kx * u + ky * v + ph)
    img += mott[..., None]
    if mask is not None and style.rim > 0:
        m8 = mask.astype(np.uint8)
        inner = cv2.erode(np.pad(m8, 1), np.ones((3, 3), np.uint8))[1:-1, 1:-1]
        rim = (m8 > 0) & (inner == 0)
        img[rim] *= 1.0 - style.rim
    return img
