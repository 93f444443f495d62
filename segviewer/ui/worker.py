"""The inference thread: image decoding, model loading and prediction, never on the UI thread.

Modelled on napari's layer slicer: the UI captures a read-only request, one worker runs it,
what is out of date is cancelled, and the result is handed back to the UI thread through a
queued signal. Each request carries a *generation*: the UI bumps it whenever the user moves to
another image. The worker keeps at most one pending request per slot (the image decoder, and
one per model), skips pending requests older than the newest generation it was given, and
drops results that came back stale (they are still cached: going back is then free).

Results are cached in a :class:`~segviewer.core.cache.ByteLRU` keyed by (image path + mtime,
model id, weights, PredictParams.key()), 1 GiB by default.

Internals (the Internals dock): a request with ``capture=True`` runs the model ONCE with hooks
(``adapters.one_pass.predict_with_internals``) and yields both the result the layers show and
the internals bundle; both are cached together under the same key. A capture request that finds
a plain cached result runs one hooked pass that replaces it; a plain request that finds a
captured entry just uses its result. A pending request for the same model and key keeps the
union of the wishes (``capture``, ``show``), so the dock's capture request and the session's
plain one for the same image run as one pass. ``show=False`` marks a request only the dock
wants (a model the layers do not show): its failure goes to ``captureFailed`` alone.

``process=True`` (what the app uses) keeps the networks in a child process
(:class:`~segviewer.ui.model_host.ProcessHost`): the GIL held by a model's Python glue then
never delays the UI thread (see ``bench/ui_stall.py``). ``process=False`` runs them in this
worker thread, for tests with in-memory fakes.

Prompts (SAM 2): a :class:`PromptRequest` (click points and / or a box on the image on screen)
runs in the same worker and host as predictions (slot ``prompt``, a newer prompt replaces a
pending one: it holds every point of the older one) and answers ``promptReady(PromptAnswer)`` or
``promptFailed``. A :class:`TrackRequest` propagates prompts through a video in the host (the
child reads the frames itself); each frame's Detections is cached under
:meth:`TrackRequest.frame_key` and reported by ``trackFrame`` as it comes; :meth:`cancel_track`
stops it after the frame in hand. While a track runs, other requests wait for it.

``synchronous=True`` runs every request inline in the caller's thread, for tests that do not
exercise the threading itself (napari's slicer has the same switch).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from segviewer.adapters.base import PredictParams
from segviewer.core.timing import Timings
from segviewer.ui.model_host import AdapterFactory, ModelHost, ProcessHost, describe_error, registry_factory

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "ImageRequest",
    "LoadedImage",
    "Prediction",
    "PredictRequest",
    "PromptRequest",
    "PromptAnswer",
    "TrackRequest",
    "InferenceWorker",
    "image_key",
    "describe_error",
]

DEFAULT_CACHE_BYTES = 1 << 30  # 1 GiB of results
IMAGE_CACHE_BYTES = 256 << 20  # decoded images, so that going back and forth is instant


def image_key(path: Path) -> tuple[str, int]:
    """(resolved path, mtime in ns): a file edited on disk gets a new key, so no stale cache hit."""
    p = Path(path).resolve()
    try:
        mtime = p.stat().st_mtime_ns
    except OSError:
        mtime = -1
    return (str(p), mtime)


@dataclass(frozen=True)
class ImageRequest:
    gen: int
    path: Path


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image, handed to the UI thread."""

    gen: int
    path: Path
    key: tuple[str, int]
    image: np.ndarray  # RGB uint8 (H, W, 3)
    timings: Timings


@dataclass(frozen=True)
class PredictRequest:
    gen: int
    image_key: tuple
    image: np.ndarray
    model_id: str
    device: str
    weights: Path | None = None
    params: PredictParams = field(default_factory=PredictParams)
    capture: bool = False  # also return the internals of the same (hooked) pass
    show: bool = True  # the layers want the result (False: only the Internals dock does)

    def cache_key(self) -> tuple:
        return (self.image_key, self.model_id, str(self.weights or ""), self.params.key())


@dataclass(frozen=True)
class Prediction:
    """A model's result on one image, with the stage timings (cached ones report no stages).

    ``internals`` is the bundle of a hooked pass (``DetectorInternals``, the FCN's stage maps,
    the PCV net's ``VotePrediction``, or ``InternalsUnavailable``), None after a plain pass."""

    gen: int
    model_id: str
    image_key: tuple
    result: Any
    timings: Timings
    cached: bool = False
    internals: Any = None


@dataclass(frozen=True)
class PromptRequest:
    """Click points ``(x, y, positive)`` and / or a ``box`` (xyxy), in the image's pixels, for a
    promptable model (SAM 2) on the image on screen. ``seq`` numbers a feature's prompts, so an
    answer to an older prompt is recognised and dropped."""

    gen: int
    seq: int
    image_key: tuple
    image: np.ndarray
    model_id: str
    device: str
    weights: Path | None = None
    points: tuple[tuple[float, float, bool], ...] = ()
    box: tuple[float, float, float, float] | None = None
    multimask: bool = True


@dataclass(frozen=True)
class PromptAnswer:
    """The model's answer to a :class:`PromptRequest`: ``masks`` is SAM 2's ``PromptMasks``
    (candidates and their predicted IoUs)."""

    request: PromptRequest
    masks: Any
    timings: Timings


@dataclass(frozen=True)
class TrackRequest:
    """Propagate ``prompts`` (SAM 2 ``ObjectPrompt`` s) through the video at ``video``, whose
    cache identity is ``video_key`` (path + mtime, see :func:`image_key`)."""

    gen: int
    seq: int
    video: Path
    video_key: tuple
    model_id: str
    device: str
    weights: Path | None
    prompts: tuple

    def frame_key(self, index: int) -> tuple:
        """The cache key of frame ``index``'s tracked masks: the same prompts on the same video
        with the same weights find them again."""
        return ("track", self.video_key, self.model_id, str(self.weights or ""), self.prompts, int(index))


@dataclass(frozen=True)
class _Entry:
    """A cache entry: one pass's result and, if it was hooked, its internals."""

    result: Any
    internals: Any = None

    def nbytes(self) -> int:
        from segviewer.adapters.one_pass import internals_nbytes

        return _nbytes(self.result) + internals_nbytes(self.internals)


class _Loop(QThread):
    """The thread's body: take the next pending request, run it, repeat until stopped."""

    def __init__(self, owner: InferenceWorker) -> None:
        super().__init__()
        self._owner = owner
        self.setObjectName("segviewer-inference")

    def run(self) -> None:  # noqa: D102 - QThread entry point
        self._owner._loop()


class InferenceWorker(QObject):
    """Decodes images and runs models in one background thread; see the module docstring.

    Signals are emitted from the worker thread and delivered to UI-thread receivers queued.
    """

    jobStarted = Signal(int, str)  # gen, slot ("image" or a model id)
    imageLoaded = Signal(object)  # LoadedImage
    imageFailed = Signal(int, str, str)  # gen, path, message
    resultReady = Signal(object)  # Prediction
    predictionFailed = Signal(int, str, str)  # gen, model id, message (requests with show=True)
    captureFailed = Signal(int, str, str)  # gen, model id, message (requests with capture=True)
    modelStateChanged = Signal(str, str)  # model id, "loading" | "loaded" | "failed"
    staleDropped = Signal(int, str)  # gen, slot: a request or result skipped as out of date
    busyChanged = Signal(bool)
    promptReady = Signal(object)  # PromptAnswer
    promptFailed = Signal(int, str, str)  # seq, model id, message
    trackFrame = Signal(int, int, object)  # seq, frame index, Detections (also cached)
    trackFinished = Signal(int, int, bool)  # seq, frames tracked, cancelled
    trackFailed = Signal(int, str, str)  # seq, model id, message

    def __init__(self, adapter_factory: AdapterFactory | None = None, *,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, synchronous: bool = False, process: bool = False,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        from segviewer.core.cache import ByteLRU

        factory = adapter_factory or registry_factory
        self.cache = ByteLRU(cache_bytes)
        self.image_cache = ByteLRU(IMAGE_CACHE_BYTES)
        self.synchronous = synchronous
        self._cond = threading.Condition()
        self._pending: OrderedDict[str, Any] = OrderedDict()
        self._track_cancel: int | None = None  # seq of a track to stop (-1: any)
        self._latest_gen = 0
        self._stop = False
        self._busy = False
        self._forget: set[str] = set()
        self.host: ModelHost | ProcessHost = ProcessHost(factory) if process else ModelHost(factory)
        self._thread: _Loop | None = None
        if not synchronous:
            self._thread = _Loop(self)
            self._thread.start()

    # ---- UI-thread API -------------------------------------------------------------------
    def request_image(self, gen: int, path: Path) -> None:
        """Decode ``path`` (replacing any pending decode); newer generations cancel older work."""
        self._submit("image", ImageRequest(gen, Path(path)))

    def request_prediction(self, req: PredictRequest) -> None:
        """Run one model on one image; a pending request for the same model is replaced (for the
        same image and parameters it keeps the pending one's ``capture``/``show`` wishes too)."""
        self._submit(f"model:{req.model_id}", req)

    def cached_prediction(self, req: PredictRequest) -> Any | None:
        """The cached result for ``req``, if any (cheap; safe from the UI thread)."""
        entry = self.cache.get(req.cache_key())
        return None if entry is None else entry.result

    def cached_internals(self, req: PredictRequest) -> Any | None:
        """The cached internals for ``req`` (None when it ran without hooks or is not cached)."""
        entry = self.cache.get(req.cache_key())
        return None if entry is None else entry.internals

    def request_prompt(self, req: PromptRequest) -> None:
        """Run a click / box prompt (replacing a pending one, which the newer prompt extends)."""
        self._submit("prompt", req)

    def request_track(self, req: TrackRequest) -> None:
        """Propagate prompts through a video (replacing a pending track)."""
        with self._cond:
            self._track_cancel = None
        self._submit("track", req)

    def cancel_track(self) -> None:
        """Stop a pending or running track (the running one after the frame in hand)."""
        with self._cond:
            self._pending.pop("track", None)
            self._track_cancel = -1

    def forget_model(self, model_id: str) -> None:
        """Drop a pending request and the loaded network of a model (e.g. new weights chosen)."""
        with self._cond:
            self._pending.pop(f"model:{model_id}", None)
            self._forget.add(model_id)

    def pending_slots(self) -> list[str]:
        with self._cond:
            return list(self._pending)

    def stop(self, timeout_ms: int = 10000) -> bool:
        """Ask the thread to finish after the current job and wait for it (bounded).

        With ``process=True`` a forward pass in flight is ended at once (its child process is
        terminated), so this returns within a fraction of a second; in-thread models cannot be
        interrupted. Nothing is reported for the job that the stop cut short.
        Returns False when a model was still running when the time ran out (the caller exits the
        process rather than destroying a running QThread)."""
        with self._cond:
            self._stop = True
            self._pending.clear()
            self._cond.notify_all()
        self.host.close(timeout_ms / 2000)  # ends a child process that is mid-forward
        if self._thread is not None:
            return bool(self._thread.wait(timeout_ms))
        return True

    # ---- internals -------------------------------------------------------------------------
    def _submit(self, slot: str, req: Any) -> None:
        with self._cond:
            self._latest_gen = max(self._latest_gen, req.gen)
            old = self._pending.pop(slot, None)
            if (isinstance(old, PredictRequest) and isinstance(req, PredictRequest)
                    and old.cache_key() == req.cache_key() and old.gen == req.gen):
                req = dataclasses.replace(req, capture=req.capture or old.capture, show=req.show or old.show)
            self._pending[slot] = req
            self._cond.notify_all()
        if self.synchronous:
            self._drain()

    def _take(self, block: bool) -> tuple[str, Any] | None:
        """The next request to run: the image decode first, then models in request order."""
        with self._cond:
            while True:
                if self._stop:
                    return None
                while self._pending:
                    slot = "image" if "image" in self._pending else next(iter(self._pending))
                    req = self._pending.pop(slot)
                    if req.gen < self._latest_gen:
                        self.staleDropped.emit(req.gen, slot)
                        continue
                    return slot, req
                if not block:
                    return None
                self._set_busy(False)
                self._cond.wait()

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    def _loop(self) -> None:
        while True:
            item = self._take(block=True)
            if item is None:
                return
            self._set_busy(True)
            self._run(*item)

    def _drain(self) -> None:
        while (item := self._take(block=False)) is not None:
            self._run(*item)

    def _stopping(self) -> bool:
        with self._cond:
            return self._stop

    def _is_stale(self, gen: int) -> bool:
        with self._cond:
            return gen < self._latest_gen

    def _run(self, slot: str, req: Any) -> None:
        self.jobStarted.emit(req.gen, slot)
        if isinstance(req, ImageRequest):
            self._run_image(req)
        elif isinstance(req, PromptRequest):
            self._run_prompt(req)
        elif isinstance(req, TrackRequest):
            self._run_track(req)
        else:
            self._run_prediction(req)

    def _forget_pending(self) -> None:
        with self._cond:
            forget, self._forget = self._forget, set()
        for mid in forget:
            self.host.forget(mid)

    def _run_prompt(self, req: PromptRequest) -> None:
        timings = Timings()
        self._forget_pending()
        on_state = lambda state: self.modelStateChanged.emit(req.model_id, state)  # noqa: E731
        try:
            masks = self.host.prompt(req.model_id, req.device, req.weights, req.image,
                                     (tuple(req.points), req.box, req.multimask), timings, on_state)
        except Exception as err:  # noqa: BLE001 - a failing prompt leaves the app usable
            if not self._stopping():
                self.promptFailed.emit(req.seq, req.model_id, describe_error(err, req.model_id))
            return
        if self._is_stale(req.gen):
            self.staleDropped.emit(req.gen, "prompt")
            return
        self.promptReady.emit(PromptAnswer(req, masks, timings))

    def _run_track(self, req: TrackRequest) -> None:
        timings = Timings()
        self._forget_pending()
        on_state = lambda state: self.modelStateChanged.emit(req.model_id, state)  # noqa: E731
        cancelled = False

        def on_frame(index: int, det: Any) -> bool:
            nonlocal cancelled
            self.cache.put(req.frame_key(index), _Entry(det), _nbytes(det))
            self.trackFrame.emit(req.seq, index, det)
            with self._cond:
                stop = self._stop or self._track_cancel in (-1, req.seq) or req.gen < self._latest_gen
            cancelled = cancelled or stop
            return not stop

        try:
            n = self.host.track(req.model_id, req.device, req.weights, req.video, req.prompts, timings, on_state,
                                on_frame)
        except Exception as err:  # noqa: BLE001 - a failing track leaves the app usable
            if not self._stopping():
                self.trackFailed.emit(req.seq, req.model_id, describe_error(err, req.model_id))
            return
        self.trackFinished.emit(req.seq, int(n), cancelled)

    def cached_track_frame(self, req: TrackRequest, index: int) -> Any | None:
        """Frame ``index``'s tracked masks for ``req``'s prompts, if cached (safe from the UI thread)."""
        entry = self.cache.get(req.frame_key(index))
        return None if entry is None else entry.result

    def _run_image(self, req: ImageRequest) -> None:
        from segviewer.core.imageio import read_image

        timings = Timings()
        try:
            key = image_key(req.path)
            image = self.image_cache.get(key)
            if image is None:
                with timings.stage("decode"):
                    image = read_image(req.path)
                self.image_cache.put(key, image, image.nbytes)
            else:
                timings["decode"] = 0.0
        except Exception as err:  # noqa: BLE001 - every failure becomes a message, never a crash
            if self._stopping():
                return
            self.imageFailed.emit(req.gen, str(req.path), describe_error(err, f"Opening {req.path.name}"))
            return
        if self._is_stale(req.gen):
            self.staleDropped.emit(req.gen, "image")
            return
        self.imageLoaded.emit(LoadedImage(req.gen, req.path, key, image, timings))

    def _run_prediction(self, req: PredictRequest) -> None:
        key = req.cache_key()
        hit = self.cache.get(key)
        if hit is not None and (hit.internals is not None or not req.capture):
            self.resultReady.emit(Prediction(req.gen, req.model_id, req.image_key, hit.result, Timings(),
                                             cached=True, internals=hit.internals))
            return
        # not cached, or cached from a plain pass while the dock wants internals: ONE hooked pass
        # then replaces the plain entry
        timings = Timings()
        self._forget_pending()
        internals = None
        on_state = lambda state: self.modelStateChanged.emit(req.model_id, state)  # noqa: E731
        try:
            t0 = time.perf_counter()
            args = (req.model_id, req.device, req.weights, req.image, req.params, timings, on_state)
            if req.capture:
                result, internals = self.host.predict_capture(*args)
            else:
                result = self.host.predict(*args)
            if not timings:
                timings["model"] = time.perf_counter() - t0
        except Exception as err:  # noqa: BLE001 - a model that raises must leave the app usable
            if self._stopping():
                # stop() ended the pass (the window is closing): not a failure to report, and a
                # message now would open a dialog after the window is gone and keep the app alive
                return
            msg = describe_error(err, req.model_id)
            if req.show:
                self.predictionFailed.emit(req.gen, req.model_id, msg)
            if req.capture:
                self.captureFailed.emit(req.gen, req.model_id, msg)
            return
        _warm(result)
        entry = _Entry(result, internals)
        self.cache.put(key, entry, entry.nbytes())
        if self._is_stale(req.gen):
            self.staleDropped.emit(req.gen, f"model:{req.model_id}")
            return
        self.resultReady.emit(Prediction(req.gen, req.model_id, req.image_key, result, timings, internals=internals))


def _nbytes(result: Any) -> int:
    nb = getattr(result, "nbytes", None)
    if callable(nb):
        return int(nb())
    return int(nb) if nb is not None else 1024


def _warm(result: Any) -> None:
    """Per-class pixel counts of a dense map, computed here rather than on the UI thread."""
    from segviewer.core.results import SemanticMap
    from segviewer.ui.display import semantic_counts

    if isinstance(result, SemanticMap):
        semantic_counts(result)
