"""Key-frame schedules for Deep Feature Flow: a fixed interval, or adaptive on motion.

With a fixed interval ``l`` every ``l``-th frame (0, l, 2l, ...) runs the whole network and the
frames between reuse its warped features. The adaptive schedule starts a new key frame when the
frame has moved too far from the key frame for warping to be trusted: when the mean flow magnitude
exceeds a limit, or when the share of pixels whose warped key frame differs from the frame by more
than a threshold exceeds a limit (occlusions and appearing objects warp badly). ``max_interval``
caps the gap either way.

Flow here is ``M_{i->k}`` on frame i (see :mod:`segviewer.analysis.flow`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segviewer.core.errors import SegviewerError

__all__ = [
    "KeyFrameError",
    "KeyDecision",
    "FixedInterval",
    "AdaptiveSchedule",
    "warp_residual",
    "MAX_INTERVAL",
]

MAX_INTERVAL = 60


class KeyFrameError(SegviewerError):
    """A key-frame setting is out of range."""


def _check_interval(value: int, what: str = "key-frame interval") -> int:
    try:
        iv = int(value)
    except (TypeError, ValueError):
        raise KeyFrameError(f"The {what} must be a whole number from 1 to {MAX_INTERVAL}; got {value!r}.") from None
    if iv != value or not 1 <= iv <= MAX_INTERVAL:
        raise KeyFrameError(f"The {what} must be a whole number from 1 to {MAX_INTERVAL}; got {value!r}.")
    return iv


@dataclass(frozen=True)
class KeyDecision:
    """Why a frame is or is not a key frame (shown in the per-frame readout)."""

    index: int
    is_key: bool
    key_index: int  # the key frame this frame uses (itself when is_key)
    reason: str  # "first", "interval", "flow", "residual", "cap", "" (propagated)
    mean_flow: float | None = None
    residual_share: float | None = None


class FixedInterval:
    """Every ``interval``-th frame is a key frame; stateless, so random access is free."""

    adaptive = False

    def __init__(self, interval: int) -> None:
        self.interval = _check_interval(interval)

    def key_for(self, index: int) -> int:
        i = int(index)
        if i < 0:
            raise KeyFrameError(f"Frame indices start at 0; got {i}.")
        return i - i % self.interval

    def is_key(self, index: int) -> bool:
        return self.key_for(index) == int(index)

    def decide(self, index: int) -> KeyDecision:
        k = self.key_for(index)
        return KeyDecision(int(index), k == index, k, ("first" if index == 0 else "interval") if k == index else "")

    def keys(self, n_frames: int) -> list[int]:
        """Key-frame indices of an ``n_frames`` video."""
        return list(range(0, max(int(n_frames), 0), self.interval))


def warp_residual(key_frame: np.ndarray, frame: np.ndarray, flow: np.ndarray, threshold: float = 30.0) -> float:
    """Share of pixels where the key frame warped by ``flow`` differs from ``frame`` by more than
    ``threshold`` (mean absolute difference over channels, 0..255 scale).

    Pixels whose sample falls outside the key frame are not counted (they have no prediction).
    Uses OpenCV's remap (bilinear, fixed-point weights): fine for a decision, not for features.
    """
    import cv2

    k = np.asarray(key_frame)
    f = np.asarray(frame)
    fl = np.asarray(flow, np.float32)
    if k.shape != f.shape or fl.shape != (*f.shape[:2], 2):
        raise KeyFrameError(f"Key frame {k.shape}, frame {f.shape} and flow {fl.shape} do not fit together.")
    h, w = f.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xs + fl[..., 0], ys + fl[..., 1]
    warped = cv2.remap(k, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    if not inside.any():
        return 1.0
    diff = np.abs(warped.astype(np.int16) - f.astype(np.int16))
    diff = diff.mean(axis=-1) if diff.ndim == 3 else diff
    return float(((diff > threshold) & inside).sum() / inside.sum())


class AdaptiveSchedule:
    """A new key frame when motion since the last key frame grows too large.

    Stateful: feed frames in playback order through :meth:`decide`. A jump backwards (seeking)
    restarts with a key frame. ``decide`` needs the flow to the current key frame and, for the
    residual test, the two images; without them it only applies ``max_interval``.
    """

    adaptive = True

    def __init__(self, max_mean_flow: float = 8.0, residual_threshold: float = 30.0,
                 max_residual_share: float = 0.05, max_interval: int = 30) -> None:
        if not (np.isfinite(max_mean_flow) and max_mean_flow > 0):
            raise KeyFrameError(f"The mean-flow limit must be a positive number of pixels; got {max_mean_flow}.")
        if not 0 < residual_threshold <= 255:
            raise KeyFrameError(f"The residual threshold must lie in (0, 255]; got {residual_threshold}.")
        if not 0 < max_residual_share <= 1:
            raise KeyFrameError(f"The residual share limit must lie in (0, 1]; got {max_residual_share}.")
        self.max_mean_flow = float(max_mean_flow)
        self.residual_threshold = float(residual_threshold)
        self.max_residual_share = float(max_residual_share)
        self.max_interval = _check_interval(max_interval, "maximum key-frame interval")
        self.key_index: int | None = None
        self._last: int | None = None

    def reset(self) -> None:
        self.key_index = None
        self._last = None

    def needs_flow(self, index: int) -> bool:
        """Whether :meth:`decide` for ``index`` can use a flow (False when it is a key frame anyway)."""
        k = self.key_index
        return not (k is None or index <= k or (self._last is not None and index < self._last)
                    or index - k >= self.max_interval)

    def decide(self, index: int, flow: np.ndarray | None = None, frame: np.ndarray | None = None,
               key_frame: np.ndarray | None = None) -> KeyDecision:
        i = int(index)
        if i < 0:
            raise KeyFrameError(f"Frame indices start at 0; got {i}.")
        if not self.needs_flow(i):
            reason = "first" if self.key_index is None or i <= self.key_index else "cap"
            if self._last is not None and i < self._last:
                reason = "first"
            return self._key(i, reason)
        assert self.key_index is not None
        self._last = i
        if flow is None:
            return KeyDecision(i, False, self.key_index, "")
        mag = np.sqrt(np.sum(np.asarray(flow, np.float64) ** 2, axis=-1))
        mean_flow = float(mag.mean())
        if mean_flow > self.max_mean_flow:
            return self._key(i, "flow", mean_flow)
        share = None
        if frame is not None and key_frame is not None:
            share = warp_residual(key_frame, frame, flow, self.residual_threshold)
            if share > self.max_residual_share:
                return self._key(i, "residual", mean_flow, share)
        return KeyDecision(i, False, self.key_index, "", mean_flow, share)

    def _key(self, i: int, reason: str, mean_flow: float | None = None, share: float | None = None) -> KeyDecision:
        self.key_index = i
        self._last = i
        return KeyDecision(i, True, i, reason, mean_flow, share)
