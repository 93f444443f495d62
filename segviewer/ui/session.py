"""The document behind the window: which images, which one is shown, which models, their results.

It talks to the :class:`~segviewer.ui.worker.InferenceWorker` and applies only what is current:
every move to another image bumps the generation, and anything that comes back for an older
generation (or for a model no longer selected) is ignored. A bad image leaves the previous one
on screen and raises a one-line message.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from segviewer.adapters.base import PredictParams
from segviewer.core.timing import Timings
from segviewer.ui.worker import InferenceWorker, LoadedImage, Prediction, PredictRequest


def expand_paths(paths: Iterable[Path]) -> tuple[list[Path], int]:
    """The browse list for what the user opened and the index to show first.

    One file: every image of its folder, starting at that file. A folder: its images. Several
    paths: the files as given plus the images of each folder.
    """
    from segviewer.core.imageio import list_images

    paths = [Path(p) for p in paths]
    if len(paths) == 1 and paths[0].is_file():
        f = paths[0]
        try:
            siblings = list_images(f.parent)
        except Exception:  # noqa: BLE001 - an unreadable folder still lets the file open
            siblings = []
        resolved = [p.resolve() for p in siblings]
        if f.resolve() in resolved:
            return siblings, resolved.index(f.resolve())
        return [f], 0
    out: list[Path] = []
    for p in paths:
        out.extend(list_images(p) if p.is_dir() else [p])
    return out, 0


class Session(QObject):
    """See the module docstring. A model that fails on the current image is not an error dialog:
    its layers are cleared, ``failures`` says why (the Metrics dock shows it), the status bar
    gets one line and ``modelFailed(model, message)`` fires; ``message`` is "" once it works again."""

    imageShown = Signal()
    resultsChanged = Signal()
    statusMessage = Signal(str)
    errorRaised = Signal(str)
    modelStateChanged = Signal(str, str)
    modelFailed = Signal(str, str)  # model id, one line ("" when the model worked again)
    busyChanged = Signal(bool)
    imageClosed = Signal()  # another view (a video) took the canvas: no image, no results
    weightsChanged = Signal(str)  # model id whose user weights (file or folder) were set or dropped

    def __init__(self, worker: InferenceWorker, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.paths: list[Path] = []
        self.index = -1
        self.gen = 0
        self.image: np.ndarray | None = None
        self.path: Path | None = None
        self.key: tuple | None = None
        self.results: dict[str, Any] = {}
        self.model_timings: dict[str, Timings] = {}
        self.decode_timings = Timings()
        self.models: list[str] = []
        self.weights: dict[str, Path] = {}
        self.device = "cpu"
        self.params = PredictParams()
        # per-model PredictParams.extra on top of ``params`` (a Mask Scoring model's rule): one
        # model's setting must not change the others' cache keys and re-run them
        self.model_extra: dict[str, dict[str, str]] = {}
        self.running: set[str] = set()
        self.derived: set[str] = set()  # results no model produced: ground truth, merges, error maps
        self.failures: dict[str, str] = {}  # model id -> why it failed on the current image
        worker.imageLoaded.connect(self._on_image_loaded)
        worker.imageFailed.connect(self._on_image_failed)
        worker.resultReady.connect(self._on_result)
        worker.predictionFailed.connect(self._on_prediction_failed)
        worker.modelStateChanged.connect(self.modelStateChanged)
        worker.busyChanged.connect(self.busyChanged)

    # ---- navigation ---------------------------------------------------------------------------
    def open_paths(self, paths: Sequence[Path]) -> bool:
        """Open files and/or folders; False (with a message) when nothing openable was found."""
        try:
            # absolute from here on: Open Recent, the last folder and titles must not depend on
            # the working directory the app was started from
            found, first = expand_paths([Path(os.path.abspath(p)) for p in paths])
        except Exception as err:  # noqa: BLE001
            self.errorRaised.emit(str(err) if str(err) else f"Could not open {paths[0]}.")
            return False
        if not found:
            self.errorRaised.emit(f"No images found in {', '.join(str(p) for p in paths)}.")
            return False
        self.paths = found
        self.show_index(first)
        return True

    def show_index(self, i: int) -> None:
        if not self.paths:
            return
        self.index = max(0, min(i, len(self.paths) - 1))
        self.gen += 1
        self.statusMessage.emit(f"Opening {self.paths[self.index].name}…")
        self.worker.request_image(self.gen, self.paths[self.index])

    def step(self, delta: int) -> None:
        """Next (+1) or previous (-1) image; a message at either end instead of wrapping."""
        if not self.paths:
            return
        j = self.index + delta
        if not 0 <= j < len(self.paths):
            self.statusMessage.emit("Last image." if delta > 0 else "First image.")
            return
        self.show_index(j)

    # ---- models ---------------------------------------------------------------------------------
    def set_models(self, model_ids: Sequence[str]) -> None:
        """Select the models to run; results of deselected ones disappear, new ones run now."""
        new = [m for m in model_ids if m not in self.models]
        self.models = list(model_ids)
        dropped = [m for m in self.results if m not in self.models and m not in self.derived]
        for m in dropped:
            self.results.pop(m)
            self.model_timings.pop(m, None)
        unfailed = [m for m in self.failures if m not in self.models]
        for m in unfailed:
            self._clear_failure(m)
        self.running.intersection_update(self.models)
        if dropped or unfailed:
            self.resultsChanged.emit()
        self.run_models(new)

    def params_for(self, model_id: str) -> PredictParams:
        """The parameters ``model_id`` runs with: the session's, plus its own extras."""
        own = self.model_extra.get(model_id)
        if not own:
            return self.params
        extra = dict(self.params.extra)
        extra.update(own)
        return dataclasses.replace(self.params, extra=tuple(sorted(extra.items())))

    def set_model_extra(self, model_id: str, key: str, value: str | None) -> None:
        """Set (None: drop) one of ``model_id``'s own extras; the caller re-runs it."""
        own = self.model_extra.setdefault(model_id, {})
        if value is None:
            own.pop(key, None)
        else:
            own[key] = value
        if not own:
            self.model_extra.pop(model_id)

    def run_models(self, model_ids: Iterable[str] | None = None) -> None:
        """Ask the worker for the selected models' results on the current image."""
        if self.image is None or self.key is None:
            return
        for mid in self.models if model_ids is None else model_ids:
            self.running.add(mid)
            self.worker.request_prediction(PredictRequest(
                self.gen, self.key, self.image, mid, self.device, self.weights.get(mid), self.params_for(mid)))

    def set_device(self, device: str) -> None:
        if device and device != self.device:
            self.device = device
            self.run_models()

    def close_image(self) -> None:
        """Another view (a video) takes the canvas: forget the image and its results, and drop what
        is still in flight for it. The browse list stays, so next/previous image comes back."""
        self.gen += 1
        self.image = self.path = self.key = None
        for d in (self.results, self.derived, self.model_timings, self.running):
            d.clear()
        for m in list(self.failures):
            self._clear_failure(m)
        self.imageClosed.emit()

    def set_derived(self, name: str, result: Any | None) -> None:
        """Show a result that no model produced (ground truth, a panoptic merge, an error map) as
        layers beside the models' ones, or remove it (``None``). Cleared when the image changes."""
        if result is None:
            self.derived.discard(name)
            if self.results.pop(name, None) is not None:
                self.resultsChanged.emit()
            return
        self.derived.add(name)
        self.results[name] = result
        self.resultsChanged.emit()

    def set_weights(self, model_id: str, path: Path | None) -> None:
        """Use a user checkpoint for ``model_id`` (None: back to the default weights) and re-run."""
        if path is None:
            self.weights.pop(model_id, None)
        else:
            self.weights[model_id] = Path(path)
        self.worker.forget_model(model_id)
        self.weightsChanged.emit(model_id)
        failed = model_id in self.failures
        self._clear_failure(model_id)
        if model_id in self.results or failed:
            self.results.pop(model_id, None)
            self.resultsChanged.emit()
        if model_id in self.models:
            self.run_models([model_id])

    def timings(self, render_s: float | None = None) -> Timings:
        """decode, preprocess, model, postprocess (summed over models) and render, for the status bar."""
        t = Timings()
        t.update(self.decode_timings)
        for mt in self.model_timings.values():
            for k, v in mt.items():
                t[k] = t.get(k, 0.0) + v
        if render_s is not None:
            t["render"] = render_s
        return t

    # ---- worker callbacks (UI thread) ---------------------------------------------------------
    def _on_image_loaded(self, li: LoadedImage) -> None:
        if li.gen != self.gen:
            return
        self.image, self.path, self.key = li.image, li.path, li.key
        self.decode_timings = li.timings
        self.results.clear()
        self.derived.clear()
        self.model_timings.clear()
        self.running.clear()
        for m in list(self.failures):
            self._clear_failure(m)
        h, w = li.image.shape[:2]
        self.statusMessage.emit(f"{li.path.name}: {w} x {h}")
        self.imageShown.emit()
        self.run_models()

    def _on_image_failed(self, gen: int, path: str, message: str) -> None:
        if gen != self.gen:
            return
        self.errorRaised.emit(message)

    def _on_result(self, pred: Prediction) -> None:
        if pred.gen != self.gen or pred.image_key != self.key or pred.model_id not in self.models:
            return
        self.running.discard(pred.model_id)
        self._clear_failure(pred.model_id)
        self.results[pred.model_id] = pred.result
        self.model_timings[pred.model_id] = pred.timings
        self.resultsChanged.emit()

    def summary(self, shown: Mapping[str, object] | None = None) -> str:
        """The status bar's line on the selected models for this image ("shapes_maskrcnn: 0
        detections · shapes_fcn: 3 classes · shapes_unet (running…)"): an empty answer is an
        answer and says so; a failed model says "failed". ``shown`` holds the results as drawn
        (after the score slider and class filter), to say how many detections are on screen."""
        from segviewer.ui.display import result_summary

        parts = []
        for m in self.models:
            if m in self.failures:
                parts.append(f"{m}: failed")
            elif m in self.running:
                parts.append(f"{m} (running…)")
            elif m in self.results:
                text = result_summary(self.results[m], (shown or {}).get(m))
                parts.append(f"{m}: {text}" if text else m)
            else:
                parts.append(m)
        return " · ".join(parts)

    def _on_prediction_failed(self, gen: int, model_id: str, message: str) -> None:
        """One model failed on the current image: its layers go (they described an earlier
        answer), the reason goes to the status bar once and to ``failures`` (the Metrics dock);
        later images run as usual. No dialog: a model that fails on every image of a folder
        would otherwise stop the user at each one."""
        if gen != self.gen or model_id not in self.models:
            return  # about an image the user left; that request's successor reports for itself
        self.running.discard(model_id)
        self.results.pop(model_id, None)
        self.model_timings.pop(model_id, None)
        self.failures[model_id] = message
        self.modelFailed.emit(model_id, message)
        self.resultsChanged.emit()
        self.statusMessage.emit(message)

    def _clear_failure(self, model_id: str) -> None:
        if self.failures.pop(model_id, None) is not None:
            self.modelFailed.emit(model_id, "")
