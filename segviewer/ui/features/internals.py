"""The Internals dock: inside the networks, from ONE captured forward pass per image and model.

Flow: when the dock is visible and an image is shown, the selected two-stage detector (the first
selected instance/detection model; the bundled ``shapes_maskrcnn`` when nothing is selected) runs
once with hooks (``capture_internals``) in a child process of our own
(:mod:`._internals_host`), off the UI thread. Every view then derives from the cached
``DetectorInternals`` on the UI thread (each update is numpy geometry, well under 100 ms):

* RoI: click a detection -> its RoIAlign bins, sample points and the feature cells they read
  (box head 7 x 7 or mask head 14 x 14, ``aligned`` on/off), RoIPool's snapped bins and the area
  the quantisation loses/gains, one channel's pooled bins as small heatmaps; hovering a bin
  highlights its points and cells.
* RPN & NMS: objectness per FPN level, anchors at a click, proposal counts, and a per-class NMS
  stepper whose kept set equals ``torchvision.ops.batched_nms`` at any IoU threshold.
* Mask head: the 28 x 28 logits and the mask pasted into its box as the model does.
* Votes: PCV pseudo-votes from the current instance result, peaks, back-projection on click.
* FCN stages: the bundled FCN's 32s/16s/8s predictions (a derived layer) and mean IoU vs GT.

Overlays are our own pyqtgraph items on ``window.canvas.vb`` above the layers; they are cleared
when the image changes and removed while the dock is hidden. Bad input (no RPN, a click on empty
space, a degenerate box) becomes a one-line message in the dock.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QDockWidget

from segviewer.core.errors import SegviewerError
from segviewer.ui.features._internals_host import CaptureRequest, ProcessCaptureHost
from segviewer.ui.features._internals_views import (
    FCN_LAYER,
    Overlays,
    VotesState,
    fcn_stage_report,
    nms_trace_for,
    table_legend_rgba,
)
from segviewer.ui.jobs import run_background
from segviewer.ui.widgets.internals_tabs import InternalsPanel

DEFAULT_DETECTOR = "shapes_maskrcnn"
DETECTOR_TASKS = ("instance", "detection")


class InternalsFeature(QObject):
    """The controller; the window owns it (Qt parent), the dock shows it."""

    captured = Signal()  # a capture for the current image finished (or failed: see ``message``)
    viewUpdated = Signal(str)  # the tab whose overlays were just redrawn
    messageShown = Signal(str)
    stagesReady = Signal()
    votesReady = Signal()

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.setObjectName("internals_feature")
        self.window, self.session = window, window.session
        self.host: Any = None  # created on first use; tests may assign an InlineHost
        self.internals: Any = None
        self.model_id: str | None = None
        self.selected: int | None = None  # detection index (model's order)
        self.anchor_point: tuple[float, float] | None = None
        self.message = ""
        self.trace: Any = None
        self.grid: Any = None  # the RoIAlign grid on screen (for hover)
        self.votes: VotesState | None = None
        self.stages: dict[str, Any] | None = None
        self._token: tuple | None = None
        self._stage_token: tuple | None = None
        self._votes_token: tuple | None = None
        self.panel = InternalsPanel()
        self.panel.votes.table.set_rgba(table_legend_rgba())
        dock = QDockWidget("Internals", window)
        dock.setObjectName("dock_internals")
        dock.setWidget(self.panel)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        if not window.restoreDockWidget(dock):
            window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
            models = window.docks.get("Models")
            if models is not None:
                window.tabifyDockWidget(models, dock)
                models.raise_()
        window.docks["Internals"] = dock
        self.dock = dock
        self.overlays = Overlays(window.canvas.vb)
        menu = window.menuBar().addMenu("&Internals")
        menu.addAction(dock.toggleViewAction())
        menu.addAction("&Recapture", lambda: self.refresh(force=True))

        p = self.panel
        p.tabs.currentChanged.connect(lambda *_: self.update_view())
        p.roi.changed.connect(self.update_view)
        p.rpn.levelChanged.connect(self.update_view)
        p.rpn.nmsChanged.connect(self._new_trace)
        p.rpn.stepChanged.connect(self.update_view)
        p.mask.changed.connect(self.update_view)
        p.votes.changed.connect(self._recompute_votes)
        p.fcn.stageChanged.connect(lambda _s: self._show_stage())
        p.fcn.requested.connect(lambda: self.request_stages(force=True))
        dock.visibilityChanged.connect(self._on_visibility)
        self.session.imageShown.connect(self._on_image_shown)
        self.session.resultsChanged.connect(self._on_results_changed)
        picker = getattr(window, "picker", None)
        if picker is not None:  # the session updates its model list in the window's slot first
            picker.selectionChanged.connect(lambda *_: QTimer.singleShot(0, self, self._on_results_changed))
        window.canvas.scene().sigMouseClicked.connect(self._on_scene_click)
        window.canvas.hovered.connect(self._on_hover)
        window.installEventFilter(self)

    # ---- lifecycle --------------------------------------------------------------------------------
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if obj is self.window and event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    def shutdown(self) -> None:
        """End the child process (window closing)."""
        if self.host is not None:
            self.host.close()

    def _host(self) -> Any:
        if self.host is None:
            self.host = ProcessCaptureHost()
        return self.host

    @property
    def active(self) -> bool:
        return self.dock.isVisible() and not self.window.isHidden()

    def _on_visibility(self, visible: bool) -> None:
        if visible:
            self.overlays.attach()
            self.refresh()
            self.update_view()
        else:
            self.overlays.detach()

    def _on_image_shown(self) -> None:
        self.internals, self.selected, self.anchor_point, self.trace, self.grid = None, None, None, None, None
        self.votes, self.stages, self._token, self._stage_token = None, None, None, None
        self.overlays.clear()
        self.panel.fcn.info.setText("")
        self.refresh()

    def _on_results_changed(self) -> None:
        if not self.active:
            return
        model, _ = self.detector()
        if model != self.model_id or self.internals is None:
            self.refresh()
        if self.panel.tab_name() == "votes":
            self._recompute_votes()

    # ---- capture ----------------------------------------------------------------------------------
    def detector(self) -> tuple[str | None, str]:
        """The model to look inside, or ``(None, why not)``."""
        cards = {c.id: c for c in getattr(self.window, "cards", [])}
        models = list(self.session.models)
        for m in models:
            card = cards.get(m)
            if card is not None and card.task in DETECTOR_TASKS:
                return m, ""
        if models:
            m = models[0]
            task = getattr(cards.get(m), "task", "other")
            return None, (f"{m} is a {task} model: it has no region proposal network, so there are no "
                          "proposals, RoIs or mask logits to show; select a Faster or Mask R-CNN "
                          f"(e.g. {DEFAULT_DETECTOR}).")
        if DEFAULT_DETECTOR in cards or not cards:
            return DEFAULT_DETECTOR, ""
        return None, "No model selected; select a Faster or Mask R-CNN to look inside it."

    def refresh(self, force: bool = False) -> None:
        """Capture the internals of the current image if they are not cached (dock visible only)."""
        s = self.session
        if not self.active and not force:
            return
        if s.image is None:
            self.show_message("Open an image to look inside the network.")
            return
        model, why = self.detector()
        if model is None:
            self.internals, self.model_id, self._token = None, None, None
            self.overlays.clear()
            self.show_message(why)
            self.captured.emit()
            return
        weights = s.weights.get(model)
        token = (s.gen, s.key, model, str(weights or ""), s.device)
        if token == self._token and not force:
            return
        self._token, self.model_id, self.internals = token, model, None
        self.overlays.clear()
        self.panel.status.setText(f"Capturing {model}'s internals…")
        req = CaptureRequest("detector", model, s.device, weights, s.image)
        host = self._host()
        run_background(lambda: _guarded(host, req), lambda out: self._on_captured(token, out),
                       lambda msg: self._on_captured(token, ("error", msg)), "Internals")

    def _on_captured(self, token: tuple, out: tuple) -> None:
        if token != self._token:
            return  # an older image or model
        if out[0] == "error":
            self.internals = None
            self.panel.status.setText("")
            self.show_message(out[1])
        else:
            it = self.internals = out[1]
            self.show_message("")
            t = it.timings
            self.panel.status.setText(
                f"{it.model_name}: one pass {1000 * sum(t.values()):.0f} ms, model frame "
                f"{it.model_size[1]}x{it.model_size[0]}, {len(it.detections)} detections. "
                "Click a detection (RoI, Mask) or anywhere (RPN).")
            self._fill_after_capture()
        self.captured.emit()
        self.update_view()

    def _fill_after_capture(self) -> None:
        it, rpn = self.internals, self.panel.rpn
        rpn.level.blockSignals(True)
        rpn.level.clear()
        names = list(it.feature_names)
        for i in range(len(it.objectness)):
            name = names[i] if i < len(names) else str(i)
            rpn.level.addItem(f"{name} (stride {it.stride(name)[0]})" if name in it.features else str(i), i)
        rpn.level.blockSignals(False)
        c = it.counts
        rpn.counts.setText(
            f"RPN: {c['anchors']} anchors → {c['rpn_candidates']} candidates before NMS → {c['rpn_kept']} "
            f"after NMS (IoU {it.rpn_nms_thresh:g}) → top {c['proposals']} proposals. Box head: "
            f"{c['det_candidates']} class boxes above {it.score_thresh:g} → {c['det_kept']} after NMS → "
            f"{c['detections']} detections.")
        rpn.nms_class.blockSignals(True)
        rpn.nms_class.clear()
        groups = it.det_candidates.groups
        for cls in np.unique(groups):
            name = it.categories[cls] if 0 <= cls < len(it.categories) else str(cls)
            rpn.nms_class.addItem(f"{name} ({int((groups == cls).sum())} boxes)", int(cls))
        rpn.nms_class.blockSignals(False)
        rpn.iou.blockSignals(True)
        rpn.set_iou(it.box_nms_thresh)
        rpn.iou_label.setText(f"IoU {rpn.iou_threshold():.2f}")
        rpn.iou.blockSignals(False)
        if len(it.detections):
            self.selected = int(np.argmax(it.detections.scores))
        self._new_trace()

    def show_message(self, text: str) -> None:
        self.message = text
        self.panel.message.setText(text)
        if text:
            self.messageShown.emit(text)

    # ---- input ------------------------------------------------------------------------------------
    def _on_scene_click(self, ev: Any) -> None:
        if not self.active or ev.button() != Qt.MouseButton.LeftButton:
            return
        vb = self.window.canvas.vb
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        p = vb.mapSceneToView(ev.scenePos())
        self.click(p.x(), p.y())

    def click(self, x: float, y: float) -> None:
        """A click at image point (x, y), interpreted by the current tab."""
        tab = self.panel.tab_name()
        try:
            if tab == "votes":
                if self.votes is None:
                    raise SegviewerError("No vote accumulator yet; show an instance model's result first.")
                self.votes.pick(x, y)
            elif self.internals is None:
                raise SegviewerError(self.message or "The internals are still being captured.")
            elif tab == "rpn":
                self.internals.anchors_at(x, y, max(self.panel.rpn.level.currentIndex(), 0))  # validates
                self.anchor_point = (x, y)
            elif tab in ("roi", "mask"):
                self.selected = self.pick_detection(x, y)
            else:
                return
        except SegviewerError as err:
            self.show_message(str(err))
            return
        self.show_message("")
        self.update_view()

    def pick_detection(self, x: float, y: float) -> int:
        """The smallest shown detection (score at or above the window's threshold) under (x, y)."""
        from segviewer.analysis.roi_align import NothingHereError, box_at

        it = self.internals
        thr = float(getattr(getattr(self.window, "state", None), "score_threshold", 0.0))
        shown = np.flatnonzero(it.detections.scores >= thr)
        if shown.size == 0:
            raise NothingHereError(f"No detection scores {thr:.2f} or more; lower the score threshold.")
        return int(shown[box_at(it.to_image(it.detections.boxes[shown]), x, y)])

    def _on_hover(self, pos: Any) -> None:
        if not self.active or self.panel.tab_name() != "roi" or self.grid is None:
            return
        self.panel.roi.hover.setText(self.overlays.hover_bin(self.grid, self.internals.scale, pos))

    # ---- views ------------------------------------------------------------------------------------
    def _new_trace(self) -> None:
        it, rpn = self.internals, self.panel.rpn
        self.trace = None
        if it is not None and rpn.nms_class.count():
            self.trace = nms_trace_for(it, int(rpn.nms_class.currentData()), rpn.iou_threshold())
        rpn.max_steps = 0 if self.trace is None else len(self.trace)
        rpn.n_steps = -1
        rpn.go(0)

    def update_view(self) -> None:
        """Redraw the current tab's overlays and dock contents from the cached internals."""
        if not self.active:
            return
        tab = self.panel.tab_name()
        self.overlays.clear()
        self.grid = None
        try:
            if tab == "votes":
                if self.votes is None:
                    self._recompute_votes()
                else:
                    self._draw_votes()
                return
            if tab == "fcn":
                self.request_stages()
                self._show_stage()
                return
            if self.internals is None:
                return
            if tab == "roi":
                self.grid = self.overlays.draw_roi(self.internals, self.selected, self.panel.roi)
            elif tab == "rpn":
                self.overlays.draw_rpn(self.internals, self.panel.rpn, self.anchor_point, self.trace,
                                       self.window.canvas.image)
            elif tab == "mask":
                self.overlays.draw_mask(self.internals, self.selected, self.panel.mask)
        except SegviewerError as err:
            self.show_message(str(err))
        self.viewUpdated.emit(tab)

    # ---- votes ------------------------------------------------------------------------------------
    def _recompute_votes(self) -> None:
        if not self.active or self.panel.tab_name() != "votes":
            return
        s, vt = self.session, self.panel.votes
        self.overlays.clear()
        results, derived = dict(s.results), set(s.derived)
        args = (vt.unit.value(), vt.threshold.value(), float(getattr(self.window.state, "score_threshold", 0.0)))
        self._votes_token = token = (s.gen, tuple((k, id(v)) for k, v in results.items()), args)
        vt.info.setText("Accumulating votes…")

        def job() -> tuple:  # numpy/OpenCV over the whole image: seconds on a big one, so off the UI thread
            try:
                return ("ok", VotesState.from_results(results, derived, *args))
            except SegviewerError as err:
                return ("error", str(err))

        run_background(job, lambda out: self._on_votes(token, out),
                       lambda msg: self._on_votes(token, ("error", msg)), "Votes")

    def _on_votes(self, token: tuple, out: tuple) -> None:
        if token != self._votes_token:
            return
        vt = self.panel.votes
        if out[0] == "error":
            self.votes = None
            vt.info.setText("")
            self.show_message(out[1])
            self.votesReady.emit()
            return
        self.votes = out[1]
        self.votesReady.emit()
        if self.active and self.panel.tab_name() == "votes":
            self._draw_votes()

    def _draw_votes(self) -> None:
        self.overlays.clear()
        self.panel.votes.info.setText(self.votes.describe())
        self.votes.draw(self.overlays)
        self.viewUpdated.emit("votes")

    # ---- FCN stages -------------------------------------------------------------------------------
    def request_stages(self, force: bool = False) -> None:
        s = self.session
        if s.image is None:
            return
        token = (s.gen, s.key, s.device)
        if token == self._stage_token and not force:
            return
        self._stage_token = token
        self.panel.fcn.info.setText("Running the FCN's three stages…")
        req = CaptureRequest("fcn", "shapes_fcn", s.device, s.weights.get("shapes_fcn"), s.image)
        host, path, size = self._host(), s.path, tuple(s.image.shape[:2])

        def job() -> tuple:
            out = _guarded(host, req)
            return out if out[0] == "error" else ("ok", out[1], fcn_stage_report(out[1], path, size))

        run_background(job, lambda out: self._on_stages(token, out),
                       lambda msg: self._on_stages(token, ("error", msg)), "FCN stages")

    def _on_stages(self, token: tuple, out: tuple) -> None:
        if token != self._stage_token:
            return
        if out[0] == "error":
            self.panel.fcn.info.setText(out[1])
            self.stages = None
        else:
            self.stages = out[1]
            self.panel.fcn.info.setText(out[2])
            if self.panel.fcn.stage() is None:
                self.panel.fcn.buttons["8s"].setChecked(True)
            self._show_stage()
        self.stagesReady.emit()

    def _show_stage(self) -> None:
        stage = self.panel.fcn.stage()
        if self.stages is None or stage is None or self.panel.tab_name() != "fcn":
            return
        self.session.set_derived(FCN_LAYER, self.stages[stage])


def _guarded(host: Any, req: CaptureRequest) -> tuple:
    """``("ok", value)`` or ``("error", one line)``: failures never escape the job."""
    from segviewer.ui.model_host import describe_error

    try:
        return ("ok", host.run(req))
    except Exception as err:  # noqa: BLE001 - becomes a message in the dock
        return ("error", describe_error(err, req[1]))


def install(window: Any) -> None:
    """Add the Internals dock (see the module docstring)."""
    InternalsFeature(window)


__all__ = ["InternalsFeature", "install", "DEFAULT_DETECTOR"]
