"""Optical flow estimators behind one call: ``estimate(frame_a, frame_b) -> FlowField``.

The returned flow is defined on ``frame_a``: the content at pixel ``p`` of ``frame_a`` is at
``p + flow(p)`` in ``frame_b``. For Deep Feature Flow pass ``(current frame, key frame)`` to get
``M_{i->k}``; for display pass ``(t, t + 1)`` to get forward motion.

* ``dis`` (default): OpenCV's Dense Inverse Search, fast on a CPU (a few ms at 640x480).
* ``farneback``: OpenCV's polynomial-expansion flow; slower, smoother.
* ``raft_small`` / ``raft_large``: torchvision's RAFT; needs its weights in the torch hub cache
  (or a file named with ``weights=``); without them, :class:`WeightsUnavailableError`.

OpenCV estimators work on grayscale uint8; RAFT on RGB scaled to [-1, 1], padded to a multiple of 8
(and to at least 128 pixels a side).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.core.results import FlowField
from segviewer.core.timing import Timings

__all__ = [
    "FlowEstimator",
    "DISFlow",
    "FarnebackFlow",
    "RAFTFlow",
    "FLOW_ESTIMATORS",
    "make_flow_estimator",
    "RAFT_URLS",
]

RAFT_URLS = {
    "raft_small": "https://download.pytorch.org/models/raft_small_C_T_V2-01064c6d.pth",
    "raft_large": "https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth",
}


@runtime_checkable
class FlowEstimator(Protocol):
    name: str

    def estimate(self, frame_a: np.ndarray, frame_b: np.ndarray, timings: Timings | None = None) -> FlowField: ...


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise SegviewerError(f"Flow needs two frames of one size; got {a.shape} and {b.shape}.")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)) or a.shape[0] < 2 or a.shape[1] < 2:
        raise SegviewerError(f"Flow needs (H, W) or (H, W, 3) frames of at least 2x2 pixels; got {a.shape}.")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise SegviewerError(f"Flow needs uint8 frames; got {a.dtype} and {b.dtype}.")
    return a, b


def _gray(img: np.ndarray) -> np.ndarray:
    import cv2

    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(img.reshape(img.shape[:2]))


class DISFlow:
    """OpenCV DIS optical flow; ``preset`` is ``ultrafast``, ``fast`` or ``medium`` (default)."""

    _PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}

    def __init__(self, preset: str = "medium") -> None:
        import cv2

        if preset not in self._PRESETS:
            raise SegviewerError(f"DIS preset must be one of {sorted(self._PRESETS)}; got {preset!r}.")
        self.name = f"dis_{preset}" if preset != "medium" else "dis"
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(self._PRESETS[preset])

    def estimate(self, frame_a: np.ndarray, frame_b: np.ndarray, timings: Timings | None = None) -> FlowField:
        a, b = _check_pair(frame_a, frame_b)
        t = timings if timings is not None else Timings()
        with t.stage("flow"):
            uv = self._dis.calc(_gray(a), _gray(b), None)
        return FlowField(uv)


class FarnebackFlow:
    """OpenCV Farneback dense flow with a 5-level pyramid (parameters from OpenCV's sample)."""

    def __init__(self, levels: int = 5, winsize: int = 15, iterations: int = 3) -> None:
        self.name = "farneback"
        self.params = dict(pyr_scale=0.5, levels=int(levels), winsize=int(winsize), iterations=int(iterations),
                           poly_n=5, poly_sigma=1.2, flags=0)

    def estimate(self, frame_a: np.ndarray, frame_b: np.ndarray, timings: Timings | None = None) -> FlowField:
        import cv2

        a, b = _check_pair(frame_a, frame_b)
        t = timings if timings is not None else Timings()
        with t.stage("flow"):
            uv = cv2.calcOpticalFlowFarneback(_gray(a), _gray(b), None, **self.params)
        return FlowField(uv)


class RAFTFlow:
    """torchvision RAFT (small or large). Weights: ``weights`` file, else the hub cache, else a download
    (off when ``allow_download=False`` or ``SEGVIEWER_OFFLINE=1``). ``random_init=True`` builds the
    network untrained, for plumbing tests and timing only."""

    def __init__(self, size: str = "small", device: str = "cpu", weights: Path | str | None = None,
                 allow_download: bool | None = None, num_flow_updates: int | None = None,
                 random_init: bool = False) -> None:
        if size not in ("small", "large"):
            raise SegviewerError(f"RAFT comes in 'small' and 'large'; got {size!r}.")
        self.name = f"raft_{size}"
        self.size = size
        self.device = device
        self.num_flow_updates = int(num_flow_updates or 12)  # torchvision's default
        self._model: Any = None
        self._load(weights, allow_download, random_init)

    def _load(self, weights: Path | str | None, allow_download: bool | None, random_init: bool) -> None:
        from torchvision.models import optical_flow

        from segviewer.adapters.weights import check_state_dict, read_state_dict, resolve_weights

        build = optical_flow.raft_small if self.size == "small" else optical_flow.raft_large
        model = build(weights=None, progress=False)
        if not random_init:
            path = resolve_weights(self.name, RAFT_URLS[self.name], user_file=weights, allow_download=allow_download)
            state = read_state_dict(path)
            check_state_dict(model, state, source=Path(path).name, model_id=self.name)
            model.load_state_dict(state)
        self._model = model.eval().to(self.device)

    def estimate(self, frame_a: np.ndarray, frame_b: np.ndarray, timings: Timings | None = None) -> FlowField:
        import torch
        import torch.nn.functional as F

        a, b = _check_pair(frame_a, frame_b)
        if a.ndim == 2 or a.shape[2] == 1:
            a, b = (np.repeat(x.reshape(*x.shape[:2], 1), 3, axis=2) for x in (a, b))
        t = timings if timings is not None else Timings()
        h, w = a.shape[:2]
        # RAFT needs sides divisible by 8 and at least 128 (its correlation pyramid has 4 levels)
        ph, pw = max((-h) % 8, 128 - h), max((-w) % 8, 128 - w)
        with t.stage("flow"), torch.inference_mode():
            x = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2).float().to(self.device)
            x = x / 127.5 - 1.0  # torchvision's OpticalFlow transform: [0, 255] -> [-1, 1]
            if ph or pw:  # replicate the border, crop after
                x = F.pad(x, (0, pw, 0, ph), mode="replicate")
            flows = self._model(x[:1], x[1:], num_flow_updates=self.num_flow_updates)
            uv = flows[-1][0, :, :h, :w].permute(1, 2, 0).cpu().numpy()
        return FlowField(uv)


FLOW_ESTIMATORS = ("dis", "dis_fast", "dis_ultrafast", "farneback", "raft_small", "raft_large")


def make_flow_estimator(name: str = "dis", **kwargs: Any) -> FlowEstimator:
    """Build an estimator by name (see :data:`FLOW_ESTIMATORS`); kwargs go to RAFT (device, weights)."""
    if name == "dis":
        return DISFlow("medium")
    if name.startswith("dis_"):
        return DISFlow(name[4:])
    if name == "farneback":
        return FarnebackFlow()
    if name in ("raft_small", "raft_large"):
        return RAFTFlow(name[5:], **kwargs)
    raise SegviewerError(f"Unknown flow estimator {name!r}; choose one of {', '.join(FLOW_ESTIMATORS)}.")
