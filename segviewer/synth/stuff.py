"""Stuff of the shapes world: sky, grass, water and road as large regions with natural texture.

Layout: a sky band at the top with a wavy horizon, the ground below split into grass / water /
road by the argmax of smooth random fields, sometimes a road band in perspective. Regions are
large (small fragments are merged into their neighbours) and label edges are crisp.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from segviewer.synth.classes import CATEGORIES

__all__ = ["stuff_labels", "stuff_image", "smooth_noise", "unit_noise"]

SKY, GRASS, WATER, ROAD = (CATEGORIES.index(n) for n in ("sky", "grass", "water", "road"))


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: float, smooth: bool = True) -> np.ndarray:
    """Zero-mean, unit-ish float32 noise with about ``cells`` features along the longer side.

    ``smooth=False`` interpolates linearly: ten times cheaper, fine for low-amplitude texture.
    """
    scale = max(h, w) / max(cells, 1.0)
    gh, gw = max(2, int(math.ceil(h / scale)) + 1), max(2, int(math.ceil(w / scale)) + 1)
    g = rng.standard_normal((gh, gw), dtype=np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC if smooth else cv2.INTER_LINEAR)


def unit_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Per-pixel float32 noise with zero mean and unit variance (uniform: 4x cheaper than normal)."""
    return rng.integers(-128, 128, (h, w), dtype=np.int8).astype(np.float32) * np.float32(1 / 73.9)


def _merge_small(labels: np.ndarray, min_area: int, check: tuple[int, ...] = (GRASS, WATER)) -> np.ndarray:
    """Give connected fragments of the ``check`` labels smaller than ``min_area`` the label most
    common around them (sky and the road band are single regions by construction)."""
    present = np.bincount(labels.ravel(), minlength=256)
    for lab in check:
        if not present[lab]:
            continue
        n, comp, stats, _ = cv2.connectedComponentsWithStats((labels == lab).astype(np.uint8), connectivity=8)
        for k in range(1, n):
            if stats[k, cv2.CC_STAT_AREA] >= min_area:
                continue
            x, y, w, h = stats[k, :4]
            y0, y1 = max(0, y - 1), min(labels.shape[0], y + h + 1)
            x0, x1 = max(0, x - 1), min(labels.shape[1], x + w + 1)
            m = (comp[y0:y1, x0:x1] == k).astype(np.uint8)
            ring = cv2.dilate(m, np.ones((3, 3), np.uint8)).astype(bool) & ~m.astype(bool)
            around = labels[y0:y1, x0:x1][ring]
            if around.size:
                labels[y0:y1, x0:x1][m.astype(bool)] = np.bincount(around).argmax()
    return labels


def stuff_labels(rng: np.random.Generator, h: int, w: int, p_sky: float = 0.9,
                 p_road_band: float = 0.45) -> np.ndarray:
    """An ``(h, w)`` uint8 map of stuff CATEGORIES indices."""
    labels = np.empty((h, w), np.uint8)
    # Ground: grass and/or water split by a smooth random field. Road only comes as a band in
    # perspective: road blobs from a random partition can look like a grey thing.
    r = rng.random()
    if r < 0.2:
        labels[:] = WATER if r < 0.05 else GRASS
    else:
        field = smooth_noise(rng, h, w, 2.2) + np.float32(rng.normal(0, 0.5))
        labels[:] = np.where(field > 0, GRASS, WATER)
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    horizon = -1.0
    if rng.random() < p_sky:
        horizon = h * rng.uniform(0.2, 0.42)
        line = np.full(w, horizon, np.float32)
        for _ in range(3):
            f, ph = rng.uniform(0.5, 4.0), rng.uniform(0, 2 * math.pi)
            line += h * rng.uniform(0.003, 0.025) * np.sin(2 * math.pi * f * xs[0] / w + ph)
        labels[ys < np.rint(line)[None, :]] = SKY
    if rng.random() < p_road_band:
        top = max(horizon, 0.0)
        x_top = w * rng.uniform(0.25, 0.75)
        x_bot = x_top + w * rng.uniform(-0.5, 0.5)
        bend = w * rng.uniform(-0.12, 0.12)
        t = np.linspace(0.0, 1.0, 24)
        cy = top + (h - top) * t
        cx = x_top + (x_bot - x_top) * t + bend * np.sin(math.pi * t)
        half = w * (0.01 + rng.uniform(0.08, 0.16) * t)
        poly = np.concatenate([np.stack([cx - half, cy], 1), np.stack([cx + half, cy], 1)[::-1]])
        road = np.zeros((h, w), np.uint8)
        cv2.fillPoly(road, [np.rint(poly).astype(np.int32)], 1, lineType=cv2.LINE_8)
        labels[(road > 0) & (labels != SKY)] = ROAD
    return _merge_small(labels, max(16, int(0.004 * h * w)))


def stuff_image(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """RGB float32 texture for a stuff label map: gradient sky with clouds, grassy, rippled, asphalt.

    Built as a per-class base colour times one single-channel variation map, which keeps it fast.
    """
    h, w = labels.shape
    ys = np.arange(h, dtype=np.float32)[:, None] / h
    fine = unit_noise(rng, h, w)
    lut = np.zeros((len(CATEGORIES), 3), np.float32)
    var = np.ones((h, w), np.float32)
    present = set(np.flatnonzero(np.bincount(labels.ravel(), minlength=256)).tolist())
    if GRASS in present:
        lut[GRASS] = np.array([70, 135, 50]) + rng.normal(0, 10, 3)
        v = 1.0 + 0.10 * smooth_noise(rng, h, w, 10, False) + 0.16 * cv2.blur(fine, (1, 5)) + 0.05 * fine
        np.copyto(var, v, where=labels == GRASS)
    if WATER in present:
        lut[WATER] = np.array([40, 100, 150]) + rng.normal(0, 8, 3)
        rip = np.sin(ys * np.float32(rng.uniform(60, 110)) + 2.5 * smooth_noise(rng, h, w, 6))
        v = 1.0 + 0.08 * rip + 0.12 * cv2.blur(fine, (9, 1)) + 0.06 * smooth_noise(rng, h, w, 4, False)
        np.copyto(var, v, where=labels == WATER)
    if ROAD in present:
        g = rng.uniform(85, 125)
        lut[ROAD] = (g, g, g + rng.uniform(0, 8))
        v = 1.0 + 0.07 * fine + 0.05 * smooth_noise(rng, h, w, 8, False)
        np.copyto(var, v, where=labels == ROAD)
    img = np.take(lut, labels, axis=0)
    if SKY in present:
        rows = int(np.flatnonzero((labels == SKY).any(1)).max()) + 1
        top = np.array([95, 150, 225], np.float32) + rng.normal(0, 10, 3).astype(np.float32)
        bot = np.array([185, 212, 240], np.float32) + rng.normal(0, 8, 3).astype(np.float32)
        t = np.clip(ys[:rows] / 0.45, 0, 1)[..., None]
        grad = top * (1 - t) + bot * t  # (rows, 1, 3)
        cloud = np.clip(smooth_noise(rng, rows, w, 5 * w / max(w, rows)) * 0.9 - rng.uniform(0.0, 0.6), 0, 1)
        cloud *= np.sqrt(cloud)  # ** 1.5, cheaper
        sky = grad + cloud[..., None] * (np.float32(245) - grad)
        np.copyto(img[:rows], sky, where=(labels[:rows] == SKY)[..., None])
        np.copyto(var[:rows], 1.0 + 0.01 * fine[:rows], where=labels[:rows] == SKY)
    img *= var[..., None]
    return img
