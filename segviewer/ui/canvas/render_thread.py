"""Layer rendering off the UI thread, newest request wins.

The canvas asks for an "overview" render (whole image, possibly downsampled) whenever results,
filters or styles change, and for a "detail" render (visible window at screen resolution) after
the view settles on a large image. A render of an unchanged layer is served from a small cache,
so moving the score slider re-renders only the detection layers.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from segviewer.ui.canvas.tiling import Window
from segviewer.ui.display import LayerId

_CACHE_ENTRIES = 24


@dataclass(frozen=True, eq=False)
class LayerSpec:
    layer: LayerId
    result: Any
    kind: str
    style: Any


@dataclass(frozen=True, eq=False)
class RenderJob:
    seq: int
    level: str  # "overview" or "detail"
    image: np.ndarray
    layers: tuple[LayerSpec, ...]
    window: Window | None = None  # None: the whole image
    out_size: tuple[int, int] | None = None  # (h, w); None: the window's own size
    base: bool = False  # also resample the photo itself


@dataclass(frozen=True, eq=False)
class RenderOutput:
    job: RenderJob
    layers: dict[LayerId, np.ndarray] = field(default_factory=dict)
    base: np.ndarray | None = None
    seconds: float = 0.0
    errors: tuple[str, ...] = ()


def resample(image: np.ndarray, window: Window | None, out_size: tuple[int, int] | None) -> np.ndarray:
    """The photo's ``window`` at ``out_size`` (area averaging when shrinking)."""
    img = image if window is None else image[window[1]:window[3], window[0]:window[2]]
    if out_size is None or out_size == img.shape[:2]:
        return np.ascontiguousarray(img)
    oh, ow = out_size
    interp = cv2.INTER_AREA if oh < img.shape[0] else cv2.INTER_NEAREST
    return np.ascontiguousarray(cv2.resize(img, (ow, oh), interpolation=interp))


class _Thread(QThread):
    def __init__(self, body) -> None:
        super().__init__()
        self._body = body
        self.setObjectName("segviewer-render")

    def run(self) -> None:  # noqa: D102 - QThread entry point
        self._body()


class LayerRenderer(QObject):
    """One background thread that renders :class:`RenderJob` s; ``rendered`` carries the output."""

    rendered = Signal(object)  # RenderOutput

    def __init__(self, synchronous: bool = False, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cond = threading.Condition()
        self._pending: dict[str, RenderJob] = {}
        self._stop = False
        self._cache: OrderedDict[tuple, tuple[Any, np.ndarray]] = OrderedDict()
        self.synchronous = synchronous
        self._thread: QThread | None = None
        if not synchronous:
            self._thread = _Thread(self._loop)
            self._thread.start()

    def submit(self, job: RenderJob) -> None:
        with self._cond:
            self._pending[job.level] = job
            self._cond.notify_all()
        if self.synchronous:
            with self._cond:
                job = self._pending.pop(job.level)
            self.rendered.emit(self._render(job))

    def stop(self, timeout_ms: int = 10000) -> bool:
        with self._cond:
            self._stop = True
            self._pending.clear()
            self._cond.notify_all()
        if self._thread is not None:
            return bool(self._thread.wait(timeout_ms))
        return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                level = "overview" if "overview" in self._pending else next(iter(self._pending))
                job = self._pending.pop(level)
            self.rendered.emit(self._render(job))

    def _render(self, job: RenderJob) -> RenderOutput:
        from segviewer.render.layers import LayerKind, render_layer

        t0 = time.perf_counter()
        base = resample(job.image, job.window, job.out_size) if job.base else None
        out: dict[LayerId, np.ndarray] = {}
        errors: list[str] = []
        for spec in job.layers:
            key = (spec.layer, id(spec.result), spec.style, job.window, job.out_size)
            hit = self._cache.get(key)
            if hit is not None and hit[0] is spec.result:
                self._cache.move_to_end(key)
                out[spec.layer] = hit[1]
                continue
            try:
                rgba = render_layer(spec.result, LayerKind(spec.kind), spec.style,
                                    window=job.window, out_size=job.out_size)
            except Exception as err:  # noqa: BLE001 - a renderer bug must not kill the thread
                errors.append(f"Drawing {spec.kind} of {spec.layer[0]} failed: {type(err).__name__}: {err}")
                continue
            rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
            out[spec.layer] = rgba
            self._cache[key] = (spec.result, rgba)
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return RenderOutput(job, out, base, time.perf_counter() - t0, tuple(errors))
