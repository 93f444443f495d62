"""The Internals dock: inside the networks, from ONE forward pass per image and model.

Flow: when the dock is visible and an image is shown, the dock asks the window's
:class:`~segviewer.ui.worker.InferenceWorker` for a *capture* prediction of each model its
current view needs: the selected two-stage detector (the first selected instance/detection
model; the bundled ``shapes_maskrcnn`` when nothing is selected), the FCN (its stages tab) and
the PCV net (the votes tab's default source). The worker's model process runs that model once
with hooks and returns both the result the layers show and the internals bundle; a pending plain
request of the session for the same model and image is merged into it, so what is displayed
comes from one pass. Every view then derives from the cached bundle on the UI thread (each
update is numpy geometry, well under 100 ms; ``bench/internals.py``):

* RoI: click a detection -> its RoIAlign bins, sample points and the feature cells they read
  (box head 7 x 7 or mask head 14 x 14, ``aligned`` on/off), RoIPool's snapped bins and the area
  the quantisation loses/gains, one channel's pooled bins as small heatmaps; hovering a bin
  highlights its points and cells.
* RPN & NMS: objectness per FPN level, anchors at a click, proposal counts, and an NMS stepper
  (the box head per class, or the RPN per FPN level) whose kept set equals
  ``torchvision.ops.batched_nms`` at any IoU threshold.
* Mask head: the 28 x 28 logits and the mask pasted into its box as the model does.
* Votes: the PCV model's own votes, or pseudo-votes from an instance result; accumulator,
  peaks, back-projected instances, a pixel's vote distribution on hover.
* FCN stages: the bundled FCN's 32s/16s/8s predictions (a derived layer) and mean IoU vs GT.

Overlays are our own pyqtgraph items on ``window.canvas.vb`` above the layers; they are cleared
when the image changes or closes (a video takes the canvas) and removed while the dock is hidden.
The FCN stage layer, likewise, shows only while the FCN tab is on screen, and goes when the FCN
is unticked in the Models panel (until a stage is picked again). Bad input (no RPN, a click on
empty space, a degenerate box) becomes a one-line message in the dock.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal

from segviewer.core.errors import SegviewerError
from segviewer.ui.features._internals_centernet import CenterNetView
from segviewer.ui.features._internals_dense import DenseHeadsView
from segviewer.ui.features._internals_keypoints import KeypointsView
from segviewer.ui.features._internals_maskscoring import MaskScoringView
from segviewer.ui.features._internals_queries import QUERY_FAMILIES, QueriesView
from segviewer.ui.features._internals_upsampling import install_views as install_fcn_views
from segviewer.ui.features._internals_views import (
    FCN_LAYER,
    PCV_SOURCE,
    Overlays,
    VotesState,
    fcn_stage_report,
    instance_sources,
    nms_trace_for,
    table_legend_rgba,
)
from segviewer.ui.features._internals_yolact import YolactView
from segviewer.ui.features._internals_yolo import YoloGridView
from segviewer.ui.jobs import run_background
from segviewer.ui.widgets.internals_tabs import InternalsPanel
from segviewer.ui.worker import Prediction, PredictRequest

DEFAULT_DETECTOR = "shapes_maskrcnn"
DETECTOR_TASKS = ("instance", "detection", "keypoint")
DEFAULT_FCN = "shapes_fcn"
DEFAULT_PCV = "shapes_pcv"
RCNN_KINDS = ("roi", "rpn", "mask_logits")  # the capture kinds of a two-stage detector's pass


class InternalsFeature(QObject):
    """The controller; the window owns it (Qt parent), the dock shows it."""

    captured = Signal()  # the detector's internals for the current image arrived (or failed: see ``message``)
    viewUpdated = Signal(str)  # the tab whose overlays were just redrawn
    messageShown = Signal(str)
    stagesReady = Signal()
    votesReady = Signal()

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.setObjectName("internals_feature")
        self.window, self.session, self.worker = window, window.session, window.session.worker
        self.internals: Any = None
        self.model_id: str | None = None
        self.selected: int | None = None  # detection index (model's order)
        self.anchor_point: tuple[float, float] | None = None
        self.message = ""
        self._detector_message = ""  # why the detector tabs have nothing (kept across tab changes)
        self.trace: Any = None
        self.grid: Any = None  # the RoIAlign grid on screen (for hover)
        self.votes: VotesState | None = None
        self.stages: dict[str, Any] | None = None
        self.pcv: Any = None  # the PCV net's VotePrediction for the current image
        self._wanted: dict[str, tuple] = {}  # role ("detector", "fcn", "pcv") -> (gen, key, model, weights, device)
        self._applied: dict[str, Any] = {}  # role -> the bundle it shows (so a cache hit of it is no news)
        self._votes_token: tuple | None = None
        self._stage_dismissed = False  # the FCN was unticked: no stage until the user picks one
        self._fcn_ticked = False
        self.panel = InternalsPanel()
        self.panel.votes.table.set_rgba(table_legend_rgba())
        dock = window.add_dock("Internals", self.panel, Qt.DockWidgetArea.LeftDockWidgetArea, tab_with="Models",
                                front=False)
        self.dock = dock
        self.overlays = Overlays(window.canvas.vb)
        self.dense = DenseHeadsView(self)  # one-stage detectors (RetinaNet, FCOS, SSD): its own view module
        # Views of a detector's bundle beyond the two-stage tabs: each declares the capture kinds it
        # draws (``kinds``) and has set_bundle / click / draw; a new family appends its view here.
        self.views: list[Any] = [self.dense]
        self.queries = QueriesView(self)  # set prediction (DETR, RT-DETR, Mask2Former, OneFormer)
        self.views.append(self.queries)
        self.views.append(YoloGridView(self))  # the YOLO grid: cells, their B boxes, class distribution, NMS
        self.views.append(CenterNetView(self))  # CenterNet: heatmaps, 3x3 max-pool peaks, heads at a peak
        self.views.append(YolactView(self))  # YOLACT: prototypes, a detection's coefficients, the mask assembly
        self.view: Any = None  # the view that words the current bundle's status (None: the two-stage tabs)
        self.routed: list[Any] = []  # every view drawing the current bundle
        self.keypoints = KeypointsView(self)  # Keypoint R-CNN's maps: a tab beside the two-stage ones
        self.own_views = install_fcn_views(self)  # tabs that pick their own model: upsampling, receptive field
        self.own_views[MaskScoringView.key] = MaskScoringView(self)  # Mask Scoring R-CNN: score vs real mask IoU
        menu = window.menuBar().addMenu("&Internals")
        menu.addAction(dock.toggleViewAction())

        p = self.panel
        p.tabs.currentChanged.connect(self._on_tab_changed)
        p.roi.changed.connect(self.update_view)
        p.rpn.levelChanged.connect(self.update_view)
        p.rpn.nmsChanged.connect(self._new_trace)
        p.rpn.nmsStageChanged.connect(self._fill_nms_groups)
        p.rpn.stepChanged.connect(self.update_view)
        p.mask.changed.connect(self.update_view)
        p.votes.changed.connect(self._recompute_votes)
        p.votes.displayChanged.connect(lambda: self._draw_votes() if self.votes is not None else None)
        p.fcn.stageChanged.connect(self._on_stage_picked)
        p.fcn.requested.connect(lambda: self.request_stages(force=True))
        dock.visibilityChanged.connect(self._on_visibility)
        self.session.imageShown.connect(self._on_image_shown)
        self.session.imageClosed.connect(self._on_image_shown)  # a video took the canvas: nothing to show
        self.session.resultsChanged.connect(self._on_results_changed)
        self.worker.resultReady.connect(self._on_prediction)
        self.worker.captureFailed.connect(self._on_capture_failed)
        picker = getattr(window, "picker", None)
        if picker is not None:  # the session updates its model list in the window's slot first
            picker.selectionChanged.connect(lambda *_: QTimer.singleShot(0, self, self._on_selection))
        window.canvas.scene().sigMouseClicked.connect(self._on_scene_click)
        window.canvas.hovered.connect(self._on_hover)

    # ---- lifecycle --------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """The dock is on screen: visible and not a tab behind another dock. While the window's
        layout settles at start-up Qt still calls every tabbed dock visible, and the first image
        would run the default detector for a tab nobody looks at; the visible region says which
        tab is shown (when this tab comes to the front, ``visibilityChanged`` asks then)."""
        return self.dock.isVisible() and not self.window.isHidden() and not self.dock.visibleRegion().isEmpty()

    def _on_visibility(self, visible: bool) -> None:
        if visible:
            self.overlays.attach()
            self.refresh()
            self.update_view()
        else:
            self.overlays.detach()
            self._hide_stage()

    def _on_tab_changed(self, *_: object) -> None:
        """Another tab: the last click's complaint belonged to the old one (a vote peak missed is no
        news on the FCN tab); the detector's own message (none selected, capture failed) stays on
        the tabs that draw its bundle."""
        on_detector = self.panel.tab_name() in self._detector_tabs()
        self.show_message(self._detector_message if on_detector else "")
        if len(self.routed) > 1 and self.internals is not None:  # two tabs draw this pass: each words its status
            self._set_status(self._view_on(self.panel.tab_name()) or self.view)
        # the detector's status line ("Click a detection (RoI, Mask) or anywhere (RPN)") would
        # misdirect on the tabs that draw another model's pass (FCN stages, upsampling, votes)
        self.panel.status.setVisible(on_detector)
        self.update_view()

    def _clear_detector_panels(self) -> None:
        """No bundle to show (a new image being captured, no detector, a failed pass): the two-stage
        tabs drop the last image's logits, galleries, counts and NMS groups."""
        p = self.panel
        for tab in (p.roi, p.rpn, p.mask, self.keypoints.tab):
            tab.clear()
        self.keypoints.drawn = None

    def _detector_tabs(self) -> set[str]:
        return {"roi", "rpn", "mask", self.keypoints.key, *(v.key for v in self.views)}

    def _on_selection(self) -> None:
        """The Models picker changed: unticking the FCN takes its stage layer with it."""
        ticked = DEFAULT_FCN in self.session.models
        if self._fcn_ticked and not ticked:
            self._stage_dismissed = True
            self.panel.fcn.clear_stage()
            self._hide_stage()
        self._fcn_ticked = ticked
        self._on_results_changed()

    def _on_image_shown(self) -> None:
        """A new image: forget the old bundles and ask for the new ones *before* the session asks
        for its plain results (imageShown comes first), so the worker merges both into one pass."""
        self.internals, self.selected, self.anchor_point, self.trace, self.grid = None, None, None, None, None
        self.votes, self.stages, self.pcv, self._votes_token = None, None, None, None
        self._wanted.clear()
        self._applied.clear()
        self._fcn_ticked = DEFAULT_FCN in self.session.models
        self._route(None)
        self.overlays.clear()
        self._clear_detector_panels()
        self.panel.fcn.info.setText("")
        self.refresh()
        if self.active and self.panel.tab_name() in ("votes", "fcn"):
            self.update_view()

    def _on_results_changed(self) -> None:
        if not self.active:
            return
        model, _ = self.detector()
        if model != self.model_id or self.internals is None:
            self.refresh()
        if self.panel.tab_name() == "votes":
            self._update_sources()

    # ---- one hooked pass per image and model, run by the window's worker -------------------------
    def detector(self) -> tuple[str | None, str]:
        """The model to look inside, or ``(None, why not)``."""
        cards = self._cards()
        models = list(self.session.models)
        for m in models:
            card = cards.get(m)
            if card is not None and (card.task in DETECTOR_TASKS or card.extra.get("hf_family") in QUERY_FAMILIES):
                return m, ""
        if models:
            m = models[0]
            task = getattr(cards.get(m), "task", "other")
            return None, (f"{m} is a {task} model: it has no region proposal network, so there are no "
                          "proposals, RoIs or mask logits to show; select a Faster or Mask R-CNN "
                          f"(e.g. {DEFAULT_DETECTOR}) or a RetinaNet, FCOS or SSD.")
        if DEFAULT_DETECTOR in cards or not cards:
            return DEFAULT_DETECTOR, ""
        return None, "No model selected; select a Faster or Mask R-CNN to look inside it."

    def pcv_model(self) -> str | None:
        """The PCV net whose votes the votes tab shows: a selected voting model, else the bundled one."""
        cards = self._cards()
        for m in self.session.models:
            if getattr(cards.get(m), "task", "") == "voting":
                return m
        return DEFAULT_PCV if DEFAULT_PCV in cards or not cards else None

    def _cards(self) -> dict[str, Any]:
        return {c.id: c for c in getattr(self.window, "cards", [])}

    def _capture(self, role: str, model: str, force: bool = False) -> bool:
        """Ask the worker for ``model``'s internals on the current image (one hooked pass, or the
        cache). Returns True when the bundle is already here (applied synchronously)."""
        s = self.session
        weights = s.weights.get(model)
        token = (s.gen, s.key, model, str(weights or ""), s.device)
        if self._wanted.get(role) == token and not force:
            return False
        self._wanted[role] = token
        req = PredictRequest(s.gen, s.key, s.image, model, s.device, weights, s.params_for(model),
                             capture=True, show=model in s.models)
        have = self.worker.cached_internals(req)
        if have is not None:
            self._apply(role, have)
            return True
        self.worker.request_prediction(req)
        return False

    def _roles_for(self, model_id: str) -> list[str]:
        s = self.session
        return [r for r, t in self._wanted.items() if t[0] == s.gen and t[1] == s.key and t[2] == model_id]

    def _on_prediction(self, pred: Prediction) -> None:
        """A bundle from the worker. The one a role already shows (the session's cache hit when the
        user selects that model, or a plain request merged into the dock's pass) is ignored, so the
        selected detection, the NMS step and the anchors stay; a new bundle replaces it."""
        if pred.internals is None or pred.gen != self.session.gen or pred.image_key != self.session.key:
            return
        for role in self._roles_for(pred.model_id):
            if self._applied.get(role) is not pred.internals:
                self._apply(role, pred.internals)

    def _on_capture_failed(self, gen: int, model_id: str, message: str) -> None:
        if gen != self.session.gen:
            return
        for role in self._roles_for(model_id):
            self._apply(role, None, message)

    def _apply(self, role: str, bundle: Any, error: str = "") -> None:
        """A bundle (or a failure) for ``role`` on the current image."""
        from segviewer.adapters.one_pass import InternalsUnavailable

        self._applied[role] = bundle
        if isinstance(bundle, InternalsUnavailable):
            bundle, error = None, bundle.message
        if role == "detector":
            self._on_captured(bundle, error)
        elif role == "fcn":
            self._on_stages(bundle, error)
        elif role == "pcv":
            self.pcv = bundle
            if bundle is None:
                self._on_votes(self._votes_token, ("error", error))
            elif self.panel.votes.source_key() == PCV_SOURCE:
                self._recompute_votes()
        for v in self.own_views.values():  # the FCN's and PCV's passes feed these too
            v.on_bundle(role, bundle, error)

    def refresh(self, force: bool = False) -> None:
        """Ask for the current detector's internals unless they are here (dock visible only)."""
        s = self.session
        if not self.active and not force:
            return
        if s.image is None:
            self.show_message("Open an image to look inside the network.")
            return
        model, why = self.detector()
        if model is None:
            self.internals, self.model_id = None, None
            self._wanted.pop("detector", None)
            self._applied.pop("detector", None)
            self.overlays.clear()
            if self.view is not None:  # the family views drop the last model's bundle (a click drew its
                self._route(None)  # anchors); once: this runs inside resultsChanged, and a view's reset redraws
            self._clear_detector_panels()
            self.panel.status.setText("")  # not "Running <the last detector> once…" for ever
            self._detector_message = why
            self.show_message(why)
            self.captured.emit()
            return
        if model != self.model_id:
            self.internals = None
            self._applied.pop("detector", None)
        self.model_id = model
        if self.internals is None or force:
            wanted = self._wanted.get("detector")
            if wanted is None or wanted[2] != model or force:
                self.panel.status.setText(f"Running {model} once with hooks…")
            self._capture("detector", model, force)

    def _on_captured(self, it: Any, error: str = "") -> None:
        self.overlays.clear()
        view = self._route(it)
        dense = view is not None
        tabs, was = self.panel.tabs, self.panel.tabs.currentIndex()
        tabs.blockSignals(True)  # hiding the current tab hops Qt to a neighbour (votes): no pass for a tab passed by
        try:
            self.panel.set_offered(it.kinds if dense else getattr(it, "kinds", RCNN_KINDS),
                                   prefer=view.key if dense else None)
        finally:
            tabs.blockSignals(False)
        self.keypoints.set_bundle(None if dense else it)
        self._detector_message = error if it is None else ""
        if it is None:
            self.internals = None
            self._clear_detector_panels()
            self.panel.status.setText("")
            self.show_message(error)
        else:
            self.internals = it
            self.show_message("")
            self._set_status(self._view_on(self.panel.tab_name()) or view)
            if not dense:
                self._fill_after_capture()
        self.captured.emit()
        if tabs.currentIndex() != was:
            self._on_tab_changed()  # the tab the dock landed on: its status line, message and drawing
        else:
            self.update_view()

    def _route(self, it: Any) -> Any:
        """Hand a bundle to every view whose capture kinds it carries (the others get None): a
        YOLACT pass is a YOLO pass too, so both tabs draw it. The last of them, the most specific
        family, words the status line."""
        kinds = set(getattr(it, "kinds", ()) if it is not None else ())
        self.routed = [v for v in self.views if it is not None and set(v.kinds) <= kinds]
        self.view = self.routed[-1] if self.routed else None
        for v in self.views:
            v.set_bundle(it if v in self.routed else None)
        return self.view

    def _set_status(self, view: Any) -> None:
        """The status line for the current bundle as ``view`` (None: the two-stage tabs) draws it."""
        it = self.internals
        t = getattr(it, "timings", {})
        status = getattr(view, "status_text", None)  # a view whose bundle words its own status
        self.panel.status.setText(status() if status is not None else
            f"{it.model_name}: one pass {1000 * sum(v for k, v in t.items() if k not in ('replay', 'scores')):.0f} ms "
            f"(the layers' result and these internals), model frame {it.model_size[1]}x{it.model_size[0]}, "
            f"{len(it.detections)} detections. " + (getattr(view, "hint", "Click anywhere.") if view is not None else
                                                    "Click a detection (RoI, Mask) or anywhere (RPN)."))

    def _view_on(self, tab: str) -> Any:
        """The family view drawing the current bundle on ``tab``, if any."""
        return next((v for v in self.routed if v.key == tab), None)

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
        # the best detection the layers show (none: a click says to lower the threshold), not a
        # hidden one the canvas has no box for
        shown = np.flatnonzero(it.detections.scores >= self._score_threshold())
        self.selected = int(shown[np.argmax(it.detections.scores[shown])]) if shown.size else None
        self._fill_nms_groups()

    def _fill_nms_groups(self) -> None:
        """The NMS stepper's groups (classes of the box head, or FPN levels of the RPN) and the
        model's own IoU threshold for that NMS; then a new trace."""
        it, rpn = self.internals, self.panel.rpn
        if it is None:
            return
        rpn_stage = rpn.nms_stage() == "rpn"
        stage = it.rpn_candidates if rpn_stage else it.det_candidates
        names = list(it.feature_names)
        rpn.nms_class.blockSignals(True)
        rpn.nms_class.clear()
        groups = stage.groups
        for g in np.unique(groups):
            n = int((groups == g).sum())
            if rpn_stage:
                name = f"level {names[g] if 0 <= g < len(names) else g}"
            else:
                name = it.categories[g] if 0 <= g < len(it.categories) else str(g)
            rpn.nms_class.addItem(f"{name} ({n} boxes)", int(g))
        rpn.nms_class.blockSignals(False)
        rpn.iou.blockSignals(True)
        rpn.set_iou(it.rpn_nms_thresh if rpn_stage else it.box_nms_thresh)
        rpn.iou_label.setText(f"IoU {rpn.iou_threshold():.2f}")
        rpn.iou.blockSignals(False)
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
                    pending = self.panel.votes.info.text()  # "Running shapes_pcv once…", "Accumulating votes…"
                    raise SegviewerError(f"The votes are not ready yet: {pending}" if pending.endswith("…") else
                                         "No vote accumulator yet; show an instance model's result first.")
                self.votes.pick(x, y)
            elif (view := self._view_on(tab)) is not None:
                view.click(x, y)
            elif tab in self.own_views:
                self.own_views[tab].click(x, y)
            elif tab not in self._detector_tabs():
                return  # the FCN stages tab: a click there means nothing (not "still capturing")
            elif self.internals is None:
                raise SegviewerError(self.message or "The internals are still being captured.")
            elif tab == "rpn":
                self.internals.anchors_at(x, y, max(self.panel.rpn.level.currentIndex(), 0))  # validates
                self.anchor_point = (x, y)
            elif tab in ("roi", "mask", self.keypoints.key):
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
        thr = self._score_threshold()
        shown = np.flatnonzero(it.detections.scores >= thr)
        if len(it.detections) == 0:  # lowering the threshold would not help: say what there is
            raise NothingHereError(f"{it.model_name} detected nothing in this image (no box scored "
                                   f"{it.score_thresh:g} or more); the RPN tab shows what it proposed.")
        if shown.size == 0:
            raise NothingHereError(f"No detection scores {thr:.2f} or more; lower the score threshold.")
        return int(shown[box_at(it.to_image(it.detections.boxes[shown]), x, y)])

    def _score_threshold(self) -> float:
        """The window's score threshold: the detections below it have no box on the canvas."""
        return float(getattr(getattr(self.window, "state", None), "score_threshold", 0.0))

    def _on_hover(self, pos: Any) -> None:
        if not self.active:
            return
        tab = self.panel.tab_name()
        if tab == "roi" and self.grid is not None:
            self.panel.roi.hover.setText(self.overlays.hover_bin(self.grid, self.internals.scale, pos))
        elif tab == "votes" and self.votes is not None:
            text, rgba = self.votes.hover(*pos) if pos is not None else ("", None)
            self.panel.votes.hover.setText(text)
            self.panel.votes.dist.set_rgba(rgba)

    # ---- views ------------------------------------------------------------------------------------
    def _new_trace(self) -> None:
        it, rpn = self.internals, self.panel.rpn
        self.trace = None
        if it is not None and rpn.nms_class.count():
            self.trace = nms_trace_for(it, rpn.nms_stage(), int(rpn.nms_class.currentData()), rpn.iou_threshold())
        rpn.max_steps = 0 if self.trace is None else len(self.trace)
        rpn.n_steps = -1
        rpn.go(0)

    def update_view(self) -> None:
        """Redraw the current tab's overlays and dock contents from the cached internals."""
        if not self.active:
            return
        tab = self.panel.tab_name()
        if tab != "fcn":
            self._hide_stage()
        self.overlays.clear()
        self.grid = None
        try:
            if tab == "votes":
                if not self._update_sources():
                    if self.votes is None:
                        self._recompute_votes()
                    else:
                        self._draw_votes()
                return
            if tab == "fcn":
                self.request_stages()
                self._show_stage()
                return
            if tab in self.own_views:
                self.own_views[tab].draw(self.overlays)
                self.viewUpdated.emit(tab)
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
            elif tab == self.keypoints.key:
                self.keypoints.draw(self.overlays, self.internals, self.selected)
            elif (view := self._view_on(tab)) is not None:
                view.draw(self.overlays)
        except SegviewerError as err:
            self.show_message(str(err))
        self.viewUpdated.emit(tab)

    # ---- votes ------------------------------------------------------------------------------------
    def _update_sources(self) -> bool:
        """The vote sources on offer: the PCV net, and pseudo-votes from each instance result.
        True when the votes are being rebuilt (a new pick, or new pseudo-vote masks)."""
        s = self.session
        items: list[tuple[str, str]] = []
        pcv = self.pcv_model()
        if pcv is not None:
            items.append((f"PCV model ({pcv})", PCV_SOURCE))
        items += [(f"pseudo-votes from {name}", name) for name in instance_sources(dict(s.results), set(s.derived))]
        if self.panel.votes.set_sources(items):
            return True
        key = self.panel.votes.source_key()
        if key not in (None, PCV_SOURCE) and (self.votes is None or self.votes.origin is not s.results.get(key)):
            self._recompute_votes()  # a new result of the same instance model
            return True
        return False

    def _recompute_votes(self) -> None:
        if not self.active or self.panel.tab_name() != "votes":
            return
        s, vt = self.session, self.panel.votes
        source = vt.source_key()
        if source is None:
            self.show_message("No vote source: select an instance model, or add the PCV model's card.")
            return
        self.overlays.clear()
        if source == PCV_SOURCE:
            model = self.pcv_model()
            if self.pcv is None or self._wanted.get("pcv", (None,) * 3)[2] != model:
                self.pcv = None
                self._applied.pop("pcv", None)
                if s.image is None or model is None:
                    return
                vt.info.setText(f"Running {model} once (its voting head)…")
                if not self._capture("pcv", model):
                    return  # _apply calls back here when the votes arrive
            vp, things = self.pcv, tuple(getattr(self._cards().get(model), "isthing", ()))
            args = (vt.threshold.value(),)
            self._votes_token = token = (s.gen, "pcv", model, id(vp), args)

            def job() -> tuple:
                try:
                    return ("ok", VotesState.from_pcv(model, vp, *args, isthing=things))
                except SegviewerError as err:
                    return ("error", str(err))
        else:
            results, derived = dict(s.results), set(s.derived)
            args = (vt.unit.value(), vt.threshold.value(),
                    float(getattr(self.window.state, "score_threshold", 0.0)))
            self._votes_token = token = (s.gen, tuple((k, id(v)) for k, v in results.items()), source, args)

            def job() -> tuple:  # numpy/OpenCV over the whole image: seconds on a big one, so off the UI thread
                try:
                    return ("ok", VotesState.from_results(results, derived, *args, source=source))
                except SegviewerError as err:
                    return ("error", str(err))

        vt.info.setText("Accumulating votes…")
        run_background(job, lambda out: self._on_votes(token, out),
                       lambda msg: self._on_votes(token, ("error", msg)), "Votes", owner=self)

    def _on_votes(self, token: tuple | None, out: tuple) -> None:
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
        self.show_message("")
        self.votesReady.emit()
        if self.active and self.panel.tab_name() == "votes":
            self._draw_votes()

    def _draw_votes(self) -> None:
        self.overlays.clear()
        self.panel.votes.info.setText(self.votes.describe())
        self.votes.draw(self.overlays, self.panel.votes.show_instances())
        self.viewUpdated.emit("votes")

    # ---- FCN stages -------------------------------------------------------------------------------
    def request_stages(self, force: bool = False) -> None:
        s = self.session
        if s.image is None:
            return
        if self.stages is not None and not force:
            return
        if self._wanted.get("fcn", (None,) * 3)[:2] != (s.gen, s.key) or force:
            self.panel.fcn.info.setText(f"Running {DEFAULT_FCN} once (all three stages)…")
        self._capture("fcn", DEFAULT_FCN, force)

    def _on_stages(self, stages: Any, error: str = "") -> None:
        if stages is None:
            self.panel.fcn.info.setText(error)
            self.stages = None
            self.stagesReady.emit()
            return
        s = self.session
        token, path, size = self._wanted.get("fcn"), s.path, tuple(s.image.shape[:2])

        def done(report: str) -> None:
            if token != self._wanted.get("fcn"):
                return  # another image by now
            self.stages = stages
            self.panel.fcn.info.setText(report)
            if self.panel.fcn.stage() is None and not self._stage_dismissed:
                self.panel.fcn.buttons["8s"].setChecked(True)
            self._show_stage()
            self.stagesReady.emit()

        run_background(lambda: fcn_stage_report(stages, path, size), done,
                       lambda msg: done(f"Stages ready; no mean IoU ({msg})."), "FCN stages", owner=self)

    def _on_stage_picked(self, _stage: str) -> None:
        self._stage_dismissed = False
        self._show_stage()

    def _show_stage(self) -> None:
        stage = self.panel.fcn.stage()
        if self.stages is None or stage is None or self.panel.tab_name() != "fcn" or not self.active:
            return
        self.session.set_derived(FCN_LAYER, self.stages[stage])

    def _hide_stage(self) -> None:
        """Take the FCN stage layer off the canvas (the tab that shows it is not on screen)."""
        if FCN_LAYER in self.session.results:
            self.session.set_derived(FCN_LAYER, None)


def install(window: Any) -> None:
    """Add the Internals dock (see the module docstring)."""
    InternalsFeature(window)


__all__ = ["InternalsFeature", "install", "DEFAULT_DETECTOR"]
