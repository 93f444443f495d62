"""Small seeded scenes for the renderer tests (64-256 px), handed out by the ``scenes`` fixture
(a fixture rather than an importable helper, so it works under any pytest import mode)."""

from __future__ import annotations

import types

import cv2
import numpy as np
import pytest

from segviewer.core.results import Detections, MaskSet, SemanticMap

CATS = ("__background__", "circle", "square", "star", "ring")


def image(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def blobs(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """``(n, h, w)`` bool ellipses of varied size and place (they overlap)."""
    rng = np.random.default_rng(seed)
    full = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(2, max(3, w // 4))), int(rng.integers(2, max(3, h // 4))))
        cv2.ellipse(full[i], c, axes, float(rng.integers(0, 180)), 0, 360, 1, -1)
    return full.astype(bool)


def detections(n: int = 6, h: int = 96, w: int = 128, seed: int = 0, masks: bool = True,
               keypoints: bool = False) -> Detections:
    rng = np.random.default_rng(seed + 100)
    full = blobs(n, h, w, seed)
    ms = MaskSet.from_full(full)
    boxes = np.array([[o[0], o[1], o[0] + c.shape[1], o[1] + c.shape[0]] if c.size else [0, 0, 1, 1]
                      for c, o in zip(ms.crops, ms.offsets)], np.float32).reshape(-1, 4)
    boxes[:, :2] += rng.uniform(-0.4, 0.4, (n, 2)).astype(np.float32).clip(-boxes[:, :2], None)
    kp = None
    if keypoints:
        kp = np.concatenate([rng.uniform(0, [w, h], (n, 4, 2)), rng.uniform(-1, 1, (n, 4, 1))], -1).astype(np.float32)
    return Detections((h, w), boxes, rng.random(n).astype(np.float32), rng.integers(1, len(CATS), n), CATS,
                      masks=ms if masks else None, keypoints=kp,
                      keypoint_names=("a", "b", "c", "d") if keypoints else (),
                      skeleton=((0, 1), (1, 2), (2, 3)) if keypoints else ())


def semantic(h: int = 96, w: int = 128, seed: int = 0, ignore: int | None = 255) -> SemanticMap:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, len(CATS), (h // 8 + 1, w // 8 + 1)).astype(np.uint8)
    lab = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    if ignore is not None:
        lab[: h // 6, : w // 5] = ignore
    return SemanticMap(lab, CATS, ignore_index=ignore)


@pytest.fixture
def scenes() -> types.SimpleNamespace:
    return types.SimpleNamespace(CATS=CATS, image=image, blobs=blobs, detections=detections, semantic=semantic)
