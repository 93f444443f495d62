"""Imperfect predictions made from ground truth, with every TIDE error type in known proportions.

Used where a real model would be too slow or too good: the TIDE tests compare our error analysis
with the authors' package on these, the dataset benchmark scores 5,000 images, and two "checkpoints"
of one model are two seeds or two error rates. Each ground-truth instance becomes, at the given
rates: a good copy (slightly eroded/shifted), a localisation error (shifted by a third to two
thirds of its size), a classification error (right place, wrong class), both, a duplicate (an
extra copy with a lower score), or nothing (missed); background detections are added on top.
No Qt, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from segviewer.core.results import Detections, MaskSet

__all__ = ["ErrorRates", "perturb_detections", "scene_detections"]


@dataclass(frozen=True)
class ErrorRates:
    """Probabilities per ground-truth instance (the rest are good copies) and background
    detections per image (Poisson mean)."""

    localisation: float = 0.12
    classification: float = 0.1
    both: float = 0.05
    duplicate: float = 0.08
    missed: float = 0.1
    background: float = 0.6

    def scaled(self, k: float) -> ErrorRates:
        """Every rate times ``k`` (a better or worse "checkpoint")."""
        return ErrorRates(*(min(v * k, 0.9 if i < 5 else v * k) for i, v in enumerate(
            (self.localisation, self.classification, self.both, self.duplicate, self.missed, self.background))))


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def _box(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows = np.flatnonzero(mask.any(axis=1))
    if not rows.size:
        return (0.0, 0.0, 0.0, 0.0)
    cols = np.flatnonzero(mask.any(axis=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def _moved(rng: np.random.Generator, mask: np.ndarray, lo: float, hi: float) -> np.ndarray:
    x0, y0, x1, y1 = _box(mask)
    frac = rng.uniform(lo, hi)
    ang = rng.uniform(0, 2 * np.pi)
    return _shift(mask, int(round(np.sin(ang) * frac * max(y1 - y0, 1))),
                  int(round(np.cos(ang) * frac * max(x1 - x0, 1))))


def _blob(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    r = max(2, int(rng.uniform(0.04, 0.15) * min(h, w)))
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    yy, xx = np.ogrid[:h, :w]
    return ((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r


def perturb_detections(gt: Detections, seed: int, rates: ErrorRates = ErrorRates(),
                       ignore: np.ndarray | None = None) -> Detections:
    """Predictions for one image made from its ground truth (masks required), seeded.

    Background detections avoid ``ignore`` (a bool image, e.g. the union of the ground truth)
    where they can; scores are distinct random values (good copies score higher on average)."""
    assert gt.masks is not None
    rng = np.random.default_rng(seed)
    h, w = gt.image_size
    full = gt.masks.to_full() if len(gt) else np.zeros((0, h, w), bool)
    ncls = len(gt.categories)
    masks: list[np.ndarray] = []
    cls: list[int] = []
    scores: list[float] = []
    p = np.array([rates.localisation, rates.classification, rates.both, rates.duplicate, rates.missed])
    p_good = max(0.0, 1.0 - p.sum())
    probs = np.append(p, p_good) / (p.sum() + p_good)

    def other(c: int) -> int:
        return int((c + rng.integers(1, ncls)) % ncls) if ncls > 1 else c

    for m, c in zip(full, gt.class_ids.astype(int)):
        kind = int(rng.choice(6, p=probs))
        if kind == 4 or not m.any():
            continue
        if kind == 0:
            masks.append(_moved(rng, m, 0.35, 0.7)); cls.append(c); scores.append(rng.uniform(0.05, 0.9))  # noqa: E702
        elif kind == 1:
            masks.append(_moved(rng, m, 0.0, 0.05)); cls.append(other(c)); scores.append(rng.uniform(0.05, 0.9))  # noqa: E702
        elif kind == 2:
            masks.append(_moved(rng, m, 0.35, 0.7)); cls.append(other(c)); scores.append(rng.uniform(0.05, 0.8))  # noqa: E702
        else:
            s = rng.uniform(0.3, 1.0)
            masks.append(_moved(rng, m, 0.0, 0.05)); cls.append(c); scores.append(s)  # noqa: E702
            if kind == 3:
                masks.append(_moved(rng, m, 0.0, 0.08)); cls.append(c); scores.append(s * rng.uniform(0.2, 0.95))  # noqa: E702
    for _ in range(int(rng.poisson(rates.background))):
        b = _blob(rng, h, w)
        for _try in range(5):
            if ignore is None or not (b & ignore).any():
                break
            b = _blob(rng, h, w)
        masks.append(b); cls.append(int(rng.integers(0, ncls))); scores.append(rng.uniform(0.05, 0.7))  # noqa: E702
    keep = [k for k, m in enumerate(masks) if m.any()]
    mk = np.array([masks[k] for k in keep], bool).reshape(-1, h, w)
    boxes = np.array([_box(m) for m in mk], np.float32).reshape(-1, 4)
    return Detections((h, w), boxes, np.array([scores[k] for k in keep], np.float32),
                      np.array([cls[k] for k in keep], np.int32), gt.categories, masks=MaskSet.from_full(mk))


def scene_detections(instances: object, image_size: tuple[int, int], categories: tuple[str, ...],
                     class_of: Mapping[int, int] | None = None) -> Detections:
    """A generated scene's instances (``Scene.instances``) as ground-truth ``Detections`` whose
    class ids index ``categories`` (``class_of`` maps a scene category to it; identity if None)."""
    h, w = image_size
    inst = list(instances)  # type: ignore[call-overload]
    mk = np.array([i.mask for i in inst], bool).reshape(-1, h, w)
    boxes = np.array([_box(m) for m in mk], np.float32).reshape(-1, 4)
    cl = [int(i.category) if class_of is None else int(class_of[int(i.category)]) for i in inst]
    return Detections((h, w), boxes, np.ones(len(inst), np.float32), np.array(cl, np.int32), categories,
                      masks=MaskSet.from_full(mk))
