"""Ground truth beside the image, the merged panoptic view, the TP/FP/FN error layer and the
Metrics dock (this image and the whole folder).

Flow, all heavy work off the UI thread:

* a new image -> ``find_ground_truth`` in a background job -> a derived "ground truth" layer
  (panoptic preferred, else semantic, else instances), hidden until the user turns it on;
* model results change -> one background job merges the first instance and semantic results
  (heuristic, classes mapped by name), builds the error map against the ground truth and scores
  the image -> derived "panoptic" and "errors" layers and the dock's numbers;
* "Evaluate folder" -> :class:`~segviewer.ui.features._metrics_jobs.FolderEvaluation`;
* a dataset image opened from the Dataset dock -> :meth:`GroundTruthFeature.show_dataset` hands
  over the stored run's report for it (scored against the dataset's own ground truth): the dock
  lists it as "Dataset run" under "This image" (the live models' numbers), and its error layer
  answers the hover while no model has results; the run's totals over the dataset
  (:meth:`show_dataset_totals`) take the folder's place.

Every job carries a token (image generation, model results, merge knobs); what comes back for
an older token is dropped. ``set_derived`` emits ``resultsChanged`` too: the model results'
signature tells those echoes apart from real changes, so nothing recurses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog

from segviewer.analysis.evaluation import (
    ImageEval,
    MergeParams,
    hover_text,
    image_report,
    pick_keypoints,
    pick_results,
    upsnet_missing,
)
from segviewer.ui.jobs import run_background
from segviewer.ui.widgets.metrics_panel import MetricsPanel

GT_LAYER = "ground truth"
PANOPTIC_LAYER = "panoptic"
ERROR_LAYER = "errors"
SEMANTIC_ERROR_LAYER = "semantic errors"  # per pixel: right, wrong class, missed, spurious, ignored
HIDDEN_BY_DEFAULT = (GT_LAYER, PANOPTIC_LAYER)  # the error layer is what one comes here for


def default_host_factory() -> Any:
    """The folder evaluation's networks: a child process, as the window's own worker uses."""
    from segviewer.ui.model_host import ProcessHost, registry_factory

    return ProcessHost(registry_factory)


class GroundTruthFeature(QObject):
    """The controller; the window owns it (Qt parent), the dock shows it."""

    groundTruthLoaded = Signal()
    imageEvaluated = Signal()  # the dock shows the current image's numbers
    folderProgress = Signal(int, int)
    folderFinished = Signal(object)
    folderCancelled = Signal()
    exported = Signal(str)

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.setObjectName("groundtruth_feature")
        self.window, self.session = window, window.session
        self.host_factory: Callable[[], Any] = default_host_factory
        self.gt: Any = None  # GroundTruth of the current image, None while loading
        self.eval: ImageEval | None = None
        self.folder_report: dict[str, Any] | None = None
        self.job: Any = None  # FolderEvaluation in flight
        self._gen = 0
        self._sig: tuple | None = None
        self._token: tuple | None = None
        self.dataset_eval: tuple[Path, ImageEval, str] | None = None  # (image, report, run) from the Dataset dock
        self.panel = MetricsPanel()
        dock = window.add_dock("Metrics", self.panel, Qt.DockWidgetArea.RightDockWidgetArea, tab_with="Legend")
        self.dock = dock
        menu = window.menuBar().addMenu("&Metrics")
        menu.addAction(dock.toggleViewAction())
        menu.addAction("&Evaluate Folder", self.evaluate_folder)
        menu.addAction("Export Metrics as &JSON…", lambda: self._export_dialog("json"))
        menu.addAction("Export Metrics as &CSV…", lambda: self._export_dialog("csv"))

        self.session.imageShown.connect(self._on_image_shown)
        self.session.imageClosed.connect(self._on_image_shown)  # a video took the canvas: nothing to score
        self.session.resultsChanged.connect(self._on_results_changed)
        window.canvas.hovered.connect(self._on_hover)
        window.installEventFilter(self)  # close: stop a folder evaluation before the window goes
        self.panel.paramsChanged.connect(lambda: self.recompute(force=True))
        self.panel.evaluateRequested.connect(self.evaluate_folder)
        self.panel.cancelRequested.connect(self.cancel_folder)
        self.panel.exportRequested.connect(self._export_dialog)
        if self.session.image is not None:
            self._on_image_shown()

    # ---- current image ---------------------------------------------------------------------------
    def merge_params(self) -> MergeParams:
        overlap, area, score = self.panel.merge_values()
        return MergeParams(overlap, area, score, self.panel.merge_method())

    def _on_image_shown(self) -> None:
        from segviewer.core.groundtruth import find_ground_truth

        s = self.session
        self._gen += 1
        gen = self._gen
        self.gt, self.eval, self._sig, self._token = None, None, None, None
        self.panel.set_hover("")
        self.panel.set_notes([])
        self._show_dataset_item()  # the Dataset dock's numbers stay only for their own image
        if s.path is None or s.image is None:
            self.panel.show_image(None, "no image")
            self.panel.set_source("No image open: ground truth and metrics describe a still image.")
            return
        self.panel.show_image(None, "loading ground truth…")
        path, size = Path(s.path), tuple(s.image.shape[:2])
        self.panel.set_source(f"{path.name}: looking for ground truth…")
        run_background(lambda: find_ground_truth(path, image_size=size),
                       lambda gt: self._on_gt(gen, gt), lambda msg: self._on_gt_failed(gen, msg),
                       "Loading ground truth", owner=self.window)

    def _on_gt(self, gen: int, gt: Any) -> None:
        if gen != self._gen:
            return  # the user moved on
        self.gt = gt
        if gt:
            found = gt.panoptic if gt.panoptic is not None else gt.semantic if gt.semantic is not None else gt.instances
            self._hide_by_default(GT_LAYER, found)
            self.session.set_derived(GT_LAYER, found)
            kinds = ", ".join(f"{k}{' with keypoints' if k == 'instances' and gt.instances.keypoints is not None else ''}"
                              f" ({Path(v).name})" for k, v in gt.sources.items())
            self.panel.set_source(f"Ground truth: {kinds}")
        else:
            name = self.session.path.name if self.session.path else "this image"
            self.panel.set_source(f"No ground truth found beside {name}.")
        self.groundTruthLoaded.emit()
        self.recompute(force=True)

    def _on_gt_failed(self, gen: int, message: str) -> None:
        from segviewer.core.groundtruth import GroundTruth

        if gen != self._gen:
            return
        self.gt = GroundTruth()
        self.panel.set_source(f"Ground truth unusable: {message}")
        self.window.statusBar().showMessage(message, 10000)
        self.groundTruthLoaded.emit()
        self.recompute(force=True)

    def _model_results(self) -> dict[str, Any]:
        s = self.session
        return {k: v for k, v in s.results.items() if k not in s.derived}

    def _signature(self) -> tuple:
        """What the numbers depend on: the model results, and which models failed (a failure
        changes no result but ends the wait for that model)."""
        s = self.session
        failed = tuple(sorted(getattr(s, "failures", {}).items()))
        return tuple((k, id(v)) for k, v in self._model_results().items()) + failed

    def _on_results_changed(self) -> None:
        if self.gt is None:
            return  # ground truth still loading; its arrival recomputes
        if self._signature() != self._sig:
            self.recompute()

    def recompute(self, force: bool = False) -> None:
        """Merge, error map and numbers for the current image, in a background job."""
        s = self.session
        if s.image is None or self.gt is None:
            return
        sig = self._signature()
        if sig == self._sig and not force:
            return
        self._sig = sig
        inst, sem = pick_results(self._model_results(), s.models)
        kp = pick_keypoints(self._model_results(), s.models)  # keypoint AP when the GT has keypoints
        # UPSNet is offered only when these very results carry logits (the panel says why not)
        why = upsnet_missing(None if inst is None else inst[1], None if sem is None else sem[1],
                             (inst[0] if inst else "the instance model", sem[0] if sem else "the semantic model"))
        self.panel.set_upsnet_available(not why, why)
        params = self.merge_params()
        token = (self._gen, sig, params)
        self._token = token
        gt = self.gt
        name = s.path.name if s.path else "this image"
        failures = dict(getattr(s, "failures", {}))
        pending = [m for m in s.models if m in s.running and m not in failures]
        self.panel.show_image(self.eval.metrics if self.eval else None, "computing…")
        run_background(lambda: image_report(None if inst is None else inst[1], None if sem is None else sem[1],
                                            gt, params, name, keypoints=None if kp is None else kp[1]),
                       lambda ev: self._on_evaluated(token, ev, inst, sem, pending, failures, kp),
                       lambda msg: self._on_eval_failed(token, msg), "Scoring the image", owner=self.window)

    def _on_evaluated(self, token: tuple, ev: ImageEval, inst: Any, sem: Any, pending: list[str],
                      failures: dict[str, str] | None = None, kp: Any = None) -> None:
        if token != self._token:
            return
        if inst is None and sem is None and kp is None and self._dataset_here() is not None:
            for name in (PANOPTIC_LAYER, ERROR_LAYER, SEMANTIC_ERROR_LAYER):  # the Dataset dock's layers show
                self.session.set_derived(name, None)
            self.eval = self._dataset_here()  # the hover reads the dataset run's error layer
            self.panel.show_image(None, "no model results: the dataset run below")
            self.panel.set_notes([n for n in ev.notes if not n.startswith("No model results")])
            self.imageEvaluated.emit()
            return
        self.eval = ev
        if ev.merged is not None:
            self._hide_by_default(PANOPTIC_LAYER, ev.merged)
        self.session.set_derived(PANOPTIC_LAYER, ev.merged)
        if ev.errors is not None:
            self._hide_by_default(ERROR_LAYER, ev.errors)
        self.session.set_derived(ERROR_LAYER, ev.errors)
        if ev.semantic_errors is not None and ev.errors is not None:
            # two error layers would cover each other: the segment one shows, the pixel one on request
            self._hide_by_default(SEMANTIC_ERROR_LAYER, ev.semantic_errors, force=True)
        self.session.set_derived(SEMANTIC_ERROR_LAYER, ev.semantic_errors)
        used = [f"{k}" for k in (inst[0] if inst else None, sem[0] if sem else None) if k]
        if kp is not None and kp[0] not in used and "keypoints" in ev.metrics:
            used.append(kp[0])
        if ev.merge_method == "upsnet":
            used.append("UPSNet head")
        summary = ("vs ground truth" if ev.metrics else "") + (f" · {' + '.join(used)}" if used else "")
        if ev.errors is not None:
            c = ev.errors.counts
            summary = f"TP {c['TP']} FP {c['FP']} FN {c['FN']} ({ev.error_kind})" + (
                f" · {' + '.join(used)}" if used else "")
        elif ev.semantic_errors is not None:
            summary = _pixel_summary(ev.semantic_errors.counts) + (f" · {' + '.join(used)}" if used else "")
        failures = failures or {}
        notes = [f"{m} failed on this image: {msg.removeprefix(f'{m} failed: ')}" for m, msg in failures.items()]
        if failures and not pending:  # nothing more is coming for this image
            notes += [n for n in ev.notes if not n.startswith("No model results")]
        else:
            notes += ev.notes
        if pending:
            notes.append(f"Waiting for {', '.join(pending)}…")
        self.panel.show_image(ev.metrics, summary.strip(" ·"))
        self.panel.set_notes(notes)
        self.imageEvaluated.emit()

    # ---- a dataset run's numbers (the Dataset dock) ------------------------------------------------
    def show_dataset(self, path: Path, ev: ImageEval | None, run: str) -> None:
        """The Dataset dock's stored run scored on dataset image ``path`` (its own ground truth),
        listed as "Dataset run" while that image is shown."""
        self.dataset_eval = None if ev is None else (Path(path).absolute(), ev, run)
        self._show_dataset_item()
        inst, sem = pick_results(self._model_results(), self.session.models)
        kp = pick_keypoints(self._model_results(), self.session.models)
        here = self._dataset_here()
        if inst is None and sem is None and kp is None and here is not None:  # no live results: the hover reads this one
            self.eval = here
            if self._token is not None:  # the dock has scored (nothing) already: say where the numbers are
                self.panel.show_image(None, "no model results: the dataset run below")
                notes = [n for n in self.panel.notes.text().split("\n") if n and not n.startswith("No model results")]
                self.panel.set_notes(notes)
        self.imageEvaluated.emit()

    def _dataset_here(self) -> ImageEval | None:
        """The dataset run's report if it is for the image on screen."""
        got, s = self.dataset_eval, self.session
        if got is None or s.path is None or Path(s.path).absolute() != got[0]:
            return None
        return got[1]

    def _show_dataset_item(self) -> None:
        ev = self._dataset_here()
        if ev is None or self.dataset_eval is None:
            self.panel.show_dataset_image(None)
            return
        run = self.dataset_eval[2]
        if ev.errors is not None:
            c = ev.errors.counts
            summary = f"{run} · TP {c['TP']} FP {c['FP']} FN {c['FN']} ({ev.error_kind})"
        elif ev.semantic_errors is not None:
            summary = f"{run} · {_pixel_summary(ev.semantic_errors.counts)}"
        else:
            summary = run
        self.panel.show_dataset_image(ev.metrics, summary)

    def show_dataset_totals(self, run: str, totals: dict[str, float] | None,
                            tide: dict[str, Any] | None = None, tide_note: str = "",
                            ap: dict[str, Any] | None = None, ap_backend: str = "",
                            keypoints: dict[str, Any] | None = None) -> None:
        """The whole dataset's totals of a stored run (see ``dataset_eval.summarize_rows``) and,
        once computed, its pooled AP and TIDE dAP (``dataset_eval.dataset_instance_totals``) in
        the dock's second section (the folder evaluation's place); None clears it."""
        if totals is None:
            self.panel.show_totals("Folder", None, "not evaluated")
            return
        n = int(totals.get("images", 0))
        self.panel.show_totals("Dataset totals", totals, f"{run}: {n} image{'' if n == 1 else 's'}{tide_note}",
                               tide, ap, ap_backend, keypoints)

    def _on_eval_failed(self, token: tuple, message: str) -> None:
        if token != self._token:
            return
        self.eval = None
        self.session.set_derived(PANOPTIC_LAYER, None)
        self.session.set_derived(ERROR_LAYER, None)
        self.session.set_derived(SEMANTIC_ERROR_LAYER, None)
        self.panel.show_image(None, "failed")
        self.panel.set_notes([message])

    def _hide_by_default(self, name: str, result: Any, force: bool = False) -> None:
        """Start the ground-truth and merged layers (or ``force``: this one) hidden, once; the
        user's choice then sticks."""
        state = getattr(self.window, "state", None)
        if (name not in HIDDEN_BY_DEFAULT and not force) or state is None or not hasattr(state, "visible"):
            return
        from segviewer.render.layers import layer_kinds

        for kind in layer_kinds(result):
            state.visible.setdefault((name, str(getattr(kind, "value", kind))), False)

    def _shown(self, name: str, kind: str = "masks") -> bool:
        """Whether a derived layer is visible now (the hover line follows what is on screen)."""
        state = getattr(self.window, "state", None)
        return name in self.session.results and (state is None or bool(state.visible.get((name, kind), True)))

    def _on_hover(self, pos: tuple[float, float] | None) -> None:
        if pos is None:
            self.panel.set_hover("")
            return
        text = hover_text(self.eval, *pos, pixels=self._shown(SEMANTIC_ERROR_LAYER)) if self.eval is not None else ""
        if not text and self.gt is not None and self.gt.panoptic is not None:
            from segviewer.render.panoptic import segment_at

            seg = segment_at(self.gt.panoptic, *pos)
            text = f"Under cursor: ground truth {seg['category'] if seg else 'void'}"
        self.panel.set_hover(text)

    # ---- whole folder ----------------------------------------------------------------------------
    def evaluate_folder(self) -> bool:
        """Start the folder evaluation; False (with a message) when there is nothing to run."""
        from segviewer.ui.features._metrics_jobs import FolderEvaluation

        s = self.session
        if self.job is not None:
            return False
        if not s.paths:
            self.window.show_error("Open an image or a folder before evaluating it.")
            return False
        if not s.models:
            self.window.show_error("Select at least one model in the Models panel to evaluate the folder.")
            return False
        job = FolderEvaluation(list(s.paths), list(s.models), s.device, dict(s.weights),
                               {m: s.params_for(m) for m in s.models},
                               self.merge_params(), self.host_factory, self)
        job.progress.connect(self._on_folder_progress)
        job.succeeded.connect(self._on_folder_done)
        job.failed.connect(self._on_folder_failed)
        job.cancelled.connect(self._on_folder_cancelled)
        job.finished.connect(lambda: self._job_ended(job))
        self.job = job
        self.panel.set_running(True)
        self.panel.set_progress(0, len(s.paths), f"Evaluating {len(s.paths)} images with {', '.join(s.models)}…")
        job.start(job.Priority.LowPriority)
        return True

    def cancel_folder(self) -> None:
        if self.job is not None:
            self.panel.status.setText("Cancelling…")
            self.job.cancel()

    def _job_ended(self, job: Any) -> None:
        if self.job is job:
            self.job = None
            self.panel.set_running(False)
        job.deleteLater()

    def _on_folder_progress(self, done: int, total: int, text: str) -> None:
        self.panel.set_progress(done, total, f"{done}/{total}: {text}")
        self.folderProgress.emit(done, total)

    def _on_folder_done(self, report: dict[str, Any]) -> None:
        self.folder_report = report
        n, skipped = report["images_evaluated"], len(report["images_without_ground_truth"])
        summary = f"{n} images" + (f", {skipped} without ground truth" if skipped else "")
        self.panel.show_folder(report, summary)
        self.panel.status.setText(f"Done: {summary}.")
        self.folderFinished.emit(report)

    def _on_folder_failed(self, message: str) -> None:
        self.panel.status.setText(message)
        self.window.show_error(message)

    def _on_folder_cancelled(self) -> None:
        self.panel.status.setText("Cancelled.")
        self.folderCancelled.emit()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel and wait for a folder evaluation (tests, window close)."""
        job = self.job
        if job is None:
            return True
        job.cancel()
        return bool(job.wait(timeout_ms))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if obj is self.window and event.type() == QEvent.Type.Close:
            self.shutdown(3000)
        return False

    # ---- export ----------------------------------------------------------------------------------
    def current_report(self) -> dict[str, Any] | None:
        """The folder numbers if evaluated, else this image's (with what they describe)."""
        if self.folder_report is not None:
            return {"scope": "folder", **self.folder_report}
        if self.eval is not None and self.eval.metrics:
            s = self.session
            return {"scope": "image", "image": str(s.path), "models": list(s.models),
                    "merge": vars(self.merge_params()), **self.eval.metrics}
        return None

    def _export_dialog(self, fmt: str) -> None:
        if self.current_report() is None:
            self.window.show_error("No metrics to export yet: open an image with ground truth, or evaluate the folder.")
            return
        p = self.session.path
        suggest = str(p.with_name(f"metrics.{fmt}")) if p else f"metrics.{fmt}"
        flt = "JSON (*.json)" if fmt == "json" else "CSV (*.csv)"
        path, _ = QFileDialog.getSaveFileName(self.window, "Export metrics", suggest, flt)
        if path:
            self.export(Path(path), fmt)

    def export(self, path: Path, fmt: str | None = None) -> bool:
        """Write the numbers as JSON or CSV (by ``fmt`` or the suffix) in a background job."""
        from segviewer.analysis.evaluation import report_csv
        from segviewer.core.fileio import write_json_atomic, write_text_atomic

        report = self.current_report()
        if report is None:
            self.window.show_error("No metrics to export yet: open an image with ground truth, or evaluate the folder.")
            return False
        fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "json")

        def write() -> str:
            if fmt == "csv":
                write_text_atomic(path, report_csv(report))
            else:
                write_json_atomic(path, report, indent=1)
            return str(path)

        run_background(write, self._on_exported, self.window.show_error, "Export", owner=self.window)
        return True

    def _on_exported(self, path: str) -> None:
        self.window.statusBar().showMessage(f"Saved {path}", 8000)
        self.exported.emit(path)


def _pixel_summary(counts: dict[str, int]) -> str:
    """"right 93.1% · wrong 2.0% · missed 1.2% · spurious 3.7% (pixels)" of the counted pixels
    (right = pixel accuracy: correct classes and background predicted as background)."""
    counted = sum(v for k, v in counts.items() if k != "ignored") or 1
    parts = [f"right {100 * (counts['correct'] + counts['background']) / counted:.1f}%"]
    parts += [f"{k.replace(' class', '')} {100 * counts[k] / counted:.1f}%"
              for k in ("wrong class", "missed", "spurious") if counts[k]]
    return " · ".join(parts) + " (pixels)"


def install(window: Any) -> None:
    """Add the Metrics dock and the derived layers to ``window`` (see the module docstring)."""
    GroundTruthFeature(window)
