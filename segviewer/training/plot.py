"""A loss-curve PNG drawn with OpenCV (matplotlib is not a dependency)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _smooth(y: np.ndarray, k: int) -> np.ndarray:
    if len(y) < 3 or k <= 1:
        return y
    k = min(k, len(y))
    c = np.cumsum(np.insert(y, 0, 0.0))
    head = c[1:k] / np.arange(1, k)
    return np.concatenate([head, (c[k:] - c[:-k]) / k])


def loss_curve_image(steps: np.ndarray, losses: np.ndarray, title: str = "training loss",
                     size: tuple[int, int] = (360, 640)) -> np.ndarray:
    """RGB uint8 plot: raw loss (light) and its moving average (dark), log-scaled y axis."""
    import cv2

    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 64, 16, 32, 40
    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    cv2.putText(img, title, (left, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    x = np.asarray(steps, np.float64)
    y = np.asarray(losses, np.float64)
    ok = np.isfinite(y) & (y > 0)
    x, y = x[ok], y[ok]
    if len(x) == 0:
        return img
    ly = np.log10(y)
    lo, hi = float(ly.min()), float(ly.max())
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    x0, x1 = float(x.min()), float(max(x.max(), x.min() + 1))

    def pts(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        px = left + (xs - x0) / (x1 - x0) * (w - left - right)
        py = (h - bottom) - (ys - lo) / (hi - lo) * (h - top - bottom)
        return np.stack([px, py], 1).round().astype(np.int32).reshape(-1, 1, 2)

    for e in range(int(np.floor(lo)), int(np.ceil(hi)) + 1):  # decade grid lines
        for m in (1, 2, 5):
            v = np.log10(m * 10.0**e)
            if lo <= v <= hi:
                yy = int(pts(np.array([x0]), np.array([v]))[0, 0, 1])
                cv2.line(img, (left, yy), (w - right, yy), (225, 225, 225), 1)
                cv2.putText(img, f"{m * 10.0**e:g}", (4, yy + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 80), 1,
                            cv2.LINE_AA)
    cv2.polylines(img, [pts(x, ly)], False, (170, 200, 240), 1, cv2.LINE_AA)
    sm = np.log10(_smooth(y, max(1, len(y) // 50)))
    cv2.polylines(img, [pts(x, sm)], False, (20, 60, 160), 2, cv2.LINE_AA)
    for frac in (0.0, 0.5, 1.0):
        s = x0 + frac * (x1 - x0)
        xx = int(pts(np.array([s]), np.array([lo]))[0, 0, 0])
        cv2.putText(img, f"{s:.0f}", (max(0, xx - 12), h - bottom + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (80, 80, 80), 1, cv2.LINE_AA)
    cv2.putText(img, "step", (w // 2 - 16, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def write_loss_plot(path: Path, steps: np.ndarray, losses: np.ndarray, title: str = "training loss") -> None:
    from segviewer.core.fileio import write_image_atomic

    write_image_atomic(path, loss_curve_image(steps, losses, title))
