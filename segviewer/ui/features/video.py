"""Video with Deep Feature Flow in the window: File > Open Video… (Ctrl+Shift+V) and a "Video" dock.

The dock holds the timeline (key frames as red ticks, computed frames blue), the DFF controls
(model, key-frame interval 1..60, adaptive schedule, agreement with the whole model), an
instance model run on every frame whose instances keep their colors while they move (tracked by
mask IoU in :class:`~segviewer.core.tracking.InstanceTracker`), the flow layer controls, the per-frame readout, a plot of time and agreement per frame, and the
process-whole-video / export jobs with a progress bar and Cancel.

Where things run: opening (which probes the file) runs in a pool job; frames are decoded ahead
by :class:`ReadAhead` on its thread and shown when ready (the UI never waits on the decoder);
DFF, whole-video processing and export run on :class:`VideoEngine`'s own thread.

Frames bypass the session: the feature shows them with ``canvas.set_image`` and draws its own
per-frame layers (segmentation, tracked instances and boxes, flow colour, magnitude, arrows) as pyqtgraph items on
``canvas.vb``. It does not use ``session.set_derived``: derived results are cleared whenever
the session's image changes and belong to the still image the session holds, not to a frame.
While a video is open, Left/Right/PgUp/PgDown/Space drive the video (the window's
next/previous-image shortcuts are lifted and given back when an image is opened again).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from segviewer.core.errors import SegviewerError
from segviewer.core.results import FlowField
from segviewer.render import flow as rflow
from segviewer.render.layers import render_layer
from segviewer.ui.features._video_engine import (
    EngineConfig,
    FrameReadout,
    VideoEngine,
    available_instance_models,
    available_models,
)
from segviewer.ui.features._video_layers import arrow_points, pixmap, readout_text
from segviewer.ui.jobs import run_background
from segviewer.ui.settings import get_float
from segviewer.ui.widgets.video_plot import VideoPlot
from segviewer.ui.widgets.video_timeline import Timeline
from segviewer.video.keyframes import MAX_INTERVAL, FixedInterval
from segviewer.video.source import VIDEO_SUFFIXES, ReadAhead, VideoSource, open_video

__all__ = ["VideoFeature", "install", "readout_text"]

SCRUB_DEBOUNCE_MS = 150
PLOT_REFRESH_MS = 250


class VideoFeature(QObject):
    """The video view; one per window (``window.findChild(VideoFeature)``)."""

    videoOpened = Signal(int)  # frame count
    frameShown = Signal(int)
    resultShown = Signal(object)  # FrameReadout of the frame on screen
    jobDone = Signal(str, bool)  # what ("process" / "export"), cancelled
    _decoded = Signal(int)  # from the read-ahead thread

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.setObjectName("video_feature")
        self.window = window
        self.source: VideoSource | None = None
        self.readahead: ReadAhead | None = None
        self.engine: VideoEngine | None = None
        self.index = 0
        self.active = False
        self._pending: int | None = None
        self._fit_next = False
        self._flow: FlowField | None = None
        self._max_flow = 0.0
        self._lifted: dict[str, list[QKeySequence]] = {}
        self._decoded.connect(self._on_decoded, Qt.ConnectionType.QueuedConnection)
        self.play_timer = QTimer(self)
        self.play_timer.timeout.connect(self._tick)
        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.setInterval(SCRUB_DEBOUNCE_MS)
        self.debounce.timeout.connect(lambda: self._request(self.index))
        # The plot repaints its axes whenever anything in it moves: redraw it at most ~4 times a
        # second, not once per frame, so playback is not paced by plot painting.
        self.plot_timer = QTimer(self)
        self.plot_timer.setSingleShot(True)
        self.plot_timer.setInterval(PLOT_REFRESH_MS)
        self.plot_timer.timeout.connect(self._refresh_plot)
        self._plot_data_dirty = False
        self._build_dock()
        self._restore_settings()
        self._build_items()
        self._build_actions()
        window.session.imageShown.connect(self.leave)
        window.canvas.hovered.connect(self._on_hover)
        if isinstance(getattr(window, "path_openers", None), list):
            window.path_openers.append(self.claim)

    # ---- construction ---------------------------------------------------------------------------
    def _build_dock(self) -> None:
        w = self.window
        self.timeline = Timeline()
        self.model_box = QComboBox()
        for m in available_models():
            self.model_box.addItem(m)
        self.instances_box = QComboBox()
        self.instances_box.addItem("none", "")
        for m in available_instance_models():
            self.instances_box.addItem(m, m)
        self.instances_box.setToolTip("An instance model run on every frame; each object keeps its color "
                                      "while it moves (tracked by mask IoU)")
        self.interval = QSpinBox()
        self.interval.setRange(1, MAX_INTERVAL)
        self.interval.setValue(10)
        self.interval.setToolTip("Key-frame interval (the adaptive schedule's maximum)")
        self.adaptive = QCheckBox("adaptive")
        self.adaptive.setToolTip("New key frame when the flow or the warp residual grows too large")
        self.reference = QCheckBox("agreement")
        self.reference.setChecked(True)
        self.reference.setToolTip("Also run the whole model on propagated frames and report the mIoU with it")
        self.show_seg = QCheckBox("segmentation")
        self.show_seg.setChecked(True)
        self.show_color = QCheckBox("flow colour")
        self.show_arrows = QCheckBox("arrows")
        self.show_mag = QCheckBox("magnitude")
        self.arrow_step = QSpinBox()
        self.arrow_step.setRange(4, 64)
        self.arrow_step.setValue(16)
        self.arrow_step.setToolTip("Arrow spacing in pixels (density)")
        self.arrow_scale = QDoubleSpinBox()
        self.arrow_scale.setRange(0.1, 20.0)
        self.arrow_scale.setValue(1.0)
        self.arrow_scale.setToolTip("Arrow length scale")
        self.rim = QDoubleSpinBox()
        self.rim.setRange(0.0, 500.0)
        self.rim.setSpecialValueText("video max")
        self.rim.setToolTip("Flow magnitude at the colour wheel's rim (px); 'video max' = the largest seen so far")
        self.legend = QLabel()
        self.legend.setPixmap(pixmap(rflow.wheel_legend(41)))
        self.legend_text = QLabel("rim: –")
        self.readout = QLabel("Open a video: File > Open Video… (Ctrl+Shift+V)")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hover_label = QLabel("")
        # Text that changes every frame must not re-layout the dock (a relayout repaints the window).
        for lab in (self.readout, self.hover_label):
            lab.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.hover_label.setMinimumWidth(self.hover_label.fontMetrics().horizontalAdvance("(u, v) = (+000.00, +000.00) px"))
        self.plot = VideoPlot()
        self.process_btn = QPushButton("Process whole video")
        self.export_btn = QPushButton("Export annotated video…")
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setVisible(False)

        row1 = QHBoxLayout()
        for wd in (QLabel("model"), self.model_box, QLabel("key interval"), self.interval, self.adaptive,
                   self.reference, QLabel("instances"), self.instances_box, self.process_btn, self.export_btn, self.progress, self.cancel_btn):
            row1.addWidget(wd)
        row1.addStretch(1)
        row2 = QHBoxLayout()
        for wd in (self.show_seg, self.show_color, self.show_arrows, QLabel("spacing"), self.arrow_step,
                   QLabel("scale"), self.arrow_scale, self.show_mag, QLabel("rim"), self.rim, self.legend,
                   self.legend_text, self.hover_label):
            row2.addWidget(wd)
        row2.addStretch(1)
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.addWidget(self.timeline)
        lay.addLayout(row1)
        lay.addLayout(row2)
        lay.addWidget(self.readout)
        lay.addWidget(self.plot, 1)
        self.panel = body
        body.setEnabled(False)
        dock = w.add_dock("Video", body, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.dock = dock
        dock.setVisible(False)

        tl = self.timeline
        tl.frameRequested.connect(self.seek)
        tl.playToggled.connect(self.set_playing)
        tl.stepRequested.connect(self.step)
        tl.keyJumpRequested.connect(self.jump_key)
        self.plot.frameClicked.connect(self.seek)
        self.interval.valueChanged.connect(self.set_interval)
        for box in (self.adaptive, self.reference):
            box.toggled.connect(lambda _=None: self._reconfigure())
        self.model_box.currentTextChanged.connect(lambda _=None: self._reconfigure())
        self.instances_box.currentIndexChanged.connect(lambda _=None: self._reconfigure())
        for box in (self.show_seg, self.show_color, self.show_arrows, self.show_mag):
            box.toggled.connect(lambda _=None: self._draw_layers())
        for sp in (self.arrow_step, self.arrow_scale, self.rim):
            sp.valueChanged.connect(lambda _=None: self._draw_layers())
        self.process_btn.clicked.connect(self.process_all)
        self.export_btn.clicked.connect(self.export_dialog)
        self.cancel_btn.clicked.connect(self.cancel_job)

    def _restore_settings(self) -> None:
        """The last model, interval, schedule and instance model (``video/*`` in the settings)."""
        st = getattr(self.window, "settings", None)
        if st is None:
            return
        self._restoring = True  # each widget's change signal would save the others' defaults
        try:
            self._apply_settings(st)
        finally:
            self._restoring = False

    def _apply_settings(self, st: Any) -> None:
        for key, box in (("video/model", self.model_box), ("video/instances", self.instances_box)):
            i = box.findData(str(st.value(key, ""))) if box is self.instances_box else box.findText(str(st.value(key, "")))
            if st.contains(key) and i >= 0:
                box.setCurrentIndex(i)
        self.interval.setValue(int(get_float(st, "video/interval", self.interval.value())))
        self.adaptive.setChecked(str(st.value("video/adaptive", "false")).lower() == "true")
        self.reference.setChecked(str(st.value("video/agreement", "true")).lower() == "true")

    def _save_settings(self) -> None:
        st = getattr(self.window, "settings", None)
        if st is None or getattr(self, "_restoring", False):
            return
        st.setValue("video/model", self.model_box.currentText())
        st.setValue("video/instances", str(self.instances_box.currentData() or ""))
        st.setValue("video/interval", int(self.interval.value()))
        st.setValue("video/adaptive", "true" if self.adaptive.isChecked() else "false")
        st.setValue("video/agreement", "true" if self.reference.isChecked() else "false")

    def _build_items(self) -> None:
        vb = self.window.canvas.vb
        self.seg_item = pg.ImageItem(axisOrder="row-major")
        self.color_item = pg.ImageItem(axisOrder="row-major")
        self.mag_item = pg.ImageItem(axisOrder="row-major")
        self.arrow_item = pg.PlotCurveItem(pen=pg.mkPen(255, 255, 255, 220, width=1), connect="pairs")
        self.inst_item = pg.ImageItem(axisOrder="row-major")
        self.box_item = pg.ImageItem(axisOrder="row-major")
        for z, (item, op) in enumerate(((self.seg_item, 0.5), (self.inst_item, 1.0), (self.box_item, 1.0),
                                        (self.color_item, 0.7), (self.mag_item, 0.7), (self.arrow_item, 1.0))):
            item.setZValue(50 + z)
            item.setOpacity(op)
            item.setVisible(False)
            vb.addItem(item)
        self._seg_rgba: np.ndarray | None = None
        self._inst_rgba: tuple[np.ndarray, np.ndarray] | None = None
        self.instances: Any = None  # the tracked Detections of the frame on screen

    @property
    def _items(self) -> tuple[Any, ...]:
        return (self.seg_item, self.inst_item, self.box_item, self.color_item, self.mag_item, self.arrow_item)

    def _build_actions(self) -> None:
        w = self.window
        self.open_action = QAction("Open &Video…", w)
        self.open_action.setShortcut(QKeySequence("Ctrl+Shift+V"))
        self.open_action.setStatusTip("Open a video file for Deep Feature Flow")
        self.open_action.triggered.connect(self.open_dialog)
        self.open_frames_action = QAction("Open Frame Folder as Video…", w)
        self.open_frames_action.triggered.connect(self.open_folder_dialog)
        menu = next((a.menu() for a in w.menuBar().actions()
                     if a.menu() is not None and a.text().replace("&", "") == "File"), None)
        if menu is None:
            menu = w.menuBar().addMenu("&Video")
        before = getattr(w, "actions", {}).get("next") if isinstance(getattr(w, "actions", None), dict) else None
        for act in (self.open_action, self.open_frames_action):
            menu.insertAction(before, act) if before is not None else menu.addAction(act)
        w.addAction(self.open_action)
        self.shortcuts: list[QShortcut] = []
        for keys, fn in ((("Space",), self.toggle_play), (("Right",), lambda: self.step(1)),
                         (("Left",), lambda: self.step(-1)), (("PgDown",), lambda: self.jump_key(1)),
                         (("PgUp",), lambda: self.jump_key(-1))):
            sc = QShortcut(QKeySequence(keys[0]), w)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.setEnabled(False)
            sc.activated.connect(fn)
            self.shortcuts.append(sc)

    # ---- opening and closing --------------------------------------------------------------------
    def open_dialog(self) -> None:
        exts = " ".join(f"*{s}" for s in VIDEO_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self.window, "Open Video", "", f"Videos ({exts});;All files (*)")
        if path:
            self.open(Path(path))

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self.window, "Open Frame Folder")
        if path:
            self.open(Path(path))

    def claim(self, path: Path) -> bool:
        """``segviewer clip.mp4`` or a dropped video file: open it here (True) instead of as an image."""
        if Path(path).is_file() and Path(path).suffix.lower() in VIDEO_SUFFIXES:
            self.open(Path(path))
            return True
        return False

    def open(self, path: Path) -> None:
        """Open a video file or frame folder off the UI thread (the probe decodes frames)."""
        self.window.statusBar().showMessage(f"Opening {Path(path).name}…")
        run_background(lambda: open_video(path), self._on_opened, self.window.show_error, "Open video", owner=self.window)

    def _on_opened(self, source: VideoSource) -> None:
        self.close_video()
        self.source = source
        self.readahead = ReadAhead(source, depth=8, on_ready=self._decoded.emit)
        self.engine = VideoEngine(source.path, self._config_or_default())
        self.engine.frameDone.connect(self._on_frame_done)
        self.engine.progress.connect(self._on_progress)
        self.engine.jobFinished.connect(self._on_job_finished)
        self.engine.failed.connect(self._on_engine_failed)
        self._max_flow = 0.0
        n = source.frame_count
        self.timeline.set_count(n, source.fps)
        self.plot.set_frames(n)
        self.plot.set_readouts([])
        self._update_ticks()
        self.enter()
        self.window.stack.setCurrentWidget(self.window.canvas)
        self.window.setWindowTitle(f"{source.path.name} ({n} frames) — segviewer")
        self.window.statusBar().showMessage(
            f"{source.path.name}: {n} frames, {source.size[1]}x{source.size[0]}, {source.fps:.2f} fps", 8000)
        self.index = -1
        self.seek(0, fit=True)
        self.videoOpened.emit(n)

    def close_video(self) -> None:
        """Stop playback and the background threads; the dock stays, disabled."""
        self.set_playing(False)
        if self.engine is not None:
            self.engine.cancel()
            self.engine.close()
            self.engine.deleteLater()
            self.engine = None
        if self.readahead is not None:
            self.readahead.close()
            self.readahead = None
        if self.source is not None:
            self.source.close()
            self.source = None
        self._flow = None
        self._seg_rgba = None
        self._inst_rgba = None
        self.instances = None
        self._set_job_ui(False)

    def enter(self) -> None:
        """Video mode: the dock shows, the video keys take over from next/previous image."""
        self.active = True
        self.dock.setVisible(True)
        self.panel.setEnabled(True)
        acts = getattr(self.window, "actions", None)
        if isinstance(acts, dict) and not self._lifted:
            for name in ("next", "prev"):
                if name in acts:
                    self._lifted[name] = list(acts[name].shortcuts())
                    acts[name].setShortcuts([])
        for sc in self.shortcuts:
            sc.setEnabled(True)

    def leave(self) -> None:
        """An image was opened: stop the video, give the keys back, hide the frame's layers."""
        if not self.active:
            return
        self.active = False
        self.close_video()
        self.panel.setEnabled(False)
        for sc in self.shortcuts:
            sc.setEnabled(False)
        acts = getattr(self.window, "actions", None)
        for name, keys in self._lifted.items():
            if isinstance(acts, dict) and name in acts:
                acts[name].setShortcuts(keys)
        self._lifted = {}
        for item in self._items:
            item.setVisible(False)
        self.readout.setText("Open a video: File > Open Video… (Ctrl+Shift+V)")

    # ---- navigation -----------------------------------------------------------------------------
    @property
    def frame_count(self) -> int:
        return 0 if self.source is None else self.source.frame_count

    def seek(self, index: int, fit: bool = False) -> None:
        """Show frame ``index``: now if decoded, else when the read-ahead thread has it."""
        if self.readahead is None or self.source is None:
            return
        i = int(np.clip(index, 0, self.source.frame_count - 1))
        changed = i != self.index
        self.index = i
        self.timeline.set_frame(i)
        self._schedule_plot()
        self._fit_next = fit or self._fit_next
        self.readahead.seek(i)
        if i in self.readahead.buffered():
            self._display(i)
        else:
            self._pending = i
        if changed or fit:
            self._hide_layers()
            if self.engine is not None and (self.play_timer.isActive() or self.engine.readout(i) is not None):
                self._request(i)
            else:
                self.debounce.start()

    def step(self, delta: int) -> None:
        self.set_playing(False)
        self.seek(self.index + int(delta))

    def key_frames(self) -> list[int]:
        """Key frames known now: every interval for a fixed schedule, the computed ones if adaptive."""
        if self.engine is None:
            return []
        cfg = self.engine.config
        if not cfg.adaptive:
            return FixedInterval(cfg.interval).keys(self.frame_count)
        return [r.index for r in self.engine.readouts_for() if r.is_key]

    def jump_key(self, direction: int) -> None:
        self.set_playing(False)
        keys = self.key_frames()
        if direction > 0:
            nxt = [k for k in keys if k > self.index]
            target = nxt[0] if nxt else None
        else:
            prv = [k for k in keys if k < self.index]
            target = prv[-1] if prv else None
        if target is not None:
            self.seek(target)

    def toggle_play(self) -> None:
        self.set_playing(not self.play_timer.isActive())

    def set_playing(self, on: bool) -> None:
        if on and self.source is not None:
            if self.index >= self.frame_count - 1:
                self.seek(0)
            self.play_timer.start(max(int(round(1000.0 / self.source.fps)), 1))
        else:
            self.play_timer.stop()
        self.timeline.set_playing(self.play_timer.isActive())

    def _tick(self) -> None:
        if self.readahead is None or self.index >= self.frame_count - 1:
            self.set_playing(False)
            return
        if self._pending is None:  # the frame before is on screen: move on (never wait on the decoder)
            self.seek(self.index + 1)

    def _on_decoded(self, i: int) -> None:
        if self._pending == i and self.readahead is not None:
            self._display(i)

    def _display(self, i: int) -> None:
        assert self.readahead is not None
        try:
            frame = self.readahead.get(i, timeout=0)
        except SegviewerError as err:
            self._pending = None
            self.set_playing(False)
            self.window.show_error(str(err))
            return
        self._pending = None
        fit = self._fit_next
        self._fit_next = False
        self.window.canvas.set_image(frame, fit=fit)
        self.frameShown.emit(i)

    # ---- DFF results ----------------------------------------------------------------------------
    def _config_or_default(self, interval: int | None = None) -> EngineConfig:
        model = self.model_box.currentText() or "shapes_fcn"
        iv = int(self.interval.value()) if interval is None else interval
        return EngineConfig(model, iv, self.adaptive.isChecked(), self.reference.isChecked(),
                            str(self.instances_box.currentData() or ""))

    def set_interval(self, value: int) -> bool:
        """Set the key-frame interval (1..60); a bad value is a message, not a change."""
        try:
            cfg = self._config_or_default(value)
        except SegviewerError as err:
            self.window.show_error(str(err))
            return False
        if self.interval.value() != value:
            self.interval.setValue(value)  # re-enters with the same value
            return True
        self._reconfigure(cfg)
        return True

    def _reconfigure(self, cfg: EngineConfig | None = None) -> None:
        self._save_settings()
        if self.engine is None:
            return
        cfg = cfg or self._config_or_default()
        self.engine.configure(cfg)
        self._update_ticks()
        self.plot.set_readouts(self.engine.readouts_for(cfg))
        self._hide_layers()
        self._request(self.index)

    def _request(self, i: int) -> None:
        if self.engine is not None and i >= 0:
            self.engine.request(i)

    def _on_frame_done(self, r: FrameReadout, result: Any, flow: FlowField | None, max_flow: float,
                       instances: Any = None) -> None:
        if self.engine is None or r.config != self.engine.config.key:
            return
        self._max_flow = max(self._max_flow, max_flow)
        if r.index == self.index:
            self._seg_rgba = render_layer(result, "semantic")
            self.instances = instances
            self._inst_rgba = None if instances is None else (render_layer(instances, "masks"),
                                                              render_layer(instances, "boxes"))
            self._flow = flow
            self._draw_layers()
            self.readout.setText(readout_text(r))
            self.resultShown.emit(r)
        self._schedule_plot(data=True)

    def _schedule_plot(self, data: bool = False) -> None:
        self._plot_data_dirty |= data
        if not self.plot_timer.isActive():
            self.plot_timer.start()

    def _refresh_plot(self) -> None:
        """Cursor, points and timeline ticks, coalesced (see ``plot_timer``)."""
        self.plot.set_current(self.index)
        if self._plot_data_dirty and self.engine is not None:
            self._plot_data_dirty = False
            self.plot.set_readouts(self.engine.readouts_for())
            self._update_ticks()

    def _update_ticks(self) -> None:
        self.timeline.slider.set_keys(self.key_frames())
        done = [r.index for r in self.engine.readouts_for()] if self.engine is not None else []
        self.timeline.slider.set_done(done)

    def _hide_layers(self) -> None:
        self._seg_rgba = None
        self._inst_rgba = None
        self.instances = None
        self._flow = None
        for item in self._items:
            item.setVisible(False)

    def rim_magnitude(self) -> float:
        """The flow length at the colour wheel's rim: the user's value, else the video's max so far."""
        v = float(self.rim.value())
        return v if v > 0 else (self._max_flow if self._max_flow > 0 else 1.0)

    def _draw_layers(self) -> None:
        if self.source is None:
            return
        h, w = self.source.size
        rect = QRectF(0, 0, w, h)
        seg = self._seg_rgba is not None and self.show_seg.isChecked()
        if seg:
            self.seg_item.setImage(self._seg_rgba, levels=None)
            self.seg_item.setRect(rect)
        self.seg_item.setVisible(seg)
        for item, rgba in zip((self.inst_item, self.box_item), self._inst_rgba or (None, None)):
            if rgba is not None:
                item.setImage(rgba, levels=None)
                item.setRect(rect)
            item.setVisible(rgba is not None)
        uv = self._flow.uv if self._flow is not None else None
        rim = self.rim_magnitude()
        self.legend_text.setText(f"rim: {rim:.1f} px")
        if uv is not None and uv.shape[:2] != (h, w):
            from segviewer.analysis.flow import resize_flow

            uv = resize_flow(uv, (h, w))
        for box, item, fn in ((self.show_color, self.color_item, lambda f: rflow.flow_to_rgba(f, rim)),
                              (self.show_mag, self.mag_item, lambda f: rflow.magnitude_heatmap(f, rim))):
            on = uv is not None and box.isChecked()
            if on:
                item.setImage(fn(uv), levels=None)
                item.setRect(rect)
            item.setVisible(on)
        arrows = uv is not None and self.show_arrows.isChecked()
        if arrows:
            pts = arrow_points(uv, int(self.arrow_step.value()), float(self.arrow_scale.value()))
            self.arrow_item.setData(pts[:, 0], pts[:, 1], connect="pairs")
        self.arrow_item.setVisible(arrows)

    def _on_hover(self, pos: tuple[float, float] | None) -> None:
        if not self.active or pos is None or self._flow is None:
            self.hover_label.setText("")
            return
        uv = self._flow.uv
        h, w = uv.shape[:2]
        sh, sw = self.source.size if self.source is not None else (h, w)
        x, y = int(pos[0] * w / sw), int(pos[1] * h / sh)
        if 0 <= x < w and 0 <= y < h:
            u, v = uv[y, x]
            self.hover_label.setText(f"(u, v) = ({u:+.2f}, {v:+.2f}) px")

    # ---- jobs -----------------------------------------------------------------------------------
    def process_all(self) -> bool:
        """Run DFF over every frame (then playback reads the cache); False if a job already runs."""
        if self.engine is None:
            return False
        self.set_playing(False)
        ok = self.engine.start_job("process")
        if ok:
            self._set_job_ui(True, "Processing %v / %m")
        return ok

    def export_dialog(self) -> None:
        if self.source is None:
            return
        path, _ = QFileDialog.getSaveFileName(self.window, "Export Annotated Video",
                                              str(self.source.path.with_name(self.source.path.stem + "_dff.mp4")),
                                              "MP4 video (*.mp4)")
        if path:
            self.export(Path(path))

    def export(self, path: Path) -> bool:
        """Write the frames with the segmentation blended in, as mp4, atomically, in the engine thread."""
        if self.engine is None:
            return False
        if Path(path).suffix.lower() != ".mp4":
            self.window.show_error(f"Annotated videos are written as .mp4; {Path(path).name} has another extension.")
            return False
        self.set_playing(False)
        ok = self.engine.start_job("export", Path(path))
        if ok:
            self._set_job_ui(True, "Exporting %v / %m")
        return ok

    def cancel_job(self) -> None:
        if self.engine is not None:
            self.engine.cancel()

    def _set_job_ui(self, on: bool, fmt: str = "") -> None:
        self.progress.setVisible(on)
        self.cancel_btn.setVisible(on)
        self.process_btn.setEnabled(not on)
        self.export_btn.setEnabled(not on)
        for wd in (self.interval, self.adaptive, self.reference, self.model_box, self.instances_box):
            wd.setEnabled(not on)
        if on:
            self.progress.setRange(0, max(self.frame_count, 1))
            self.progress.setValue(0)
            self.progress.setFormat(fmt)

    def _on_progress(self, done: int, total: int, what: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_job_finished(self, what: str, cancelled: bool, detail: str) -> None:
        self._set_job_ui(False)
        if self.engine is not None:
            self.plot.set_readouts(self.engine.readouts_for())
            self._update_ticks()
        if what == "export" and not cancelled:
            self.window.statusBar().showMessage(f"Saved {detail}", 8000)
        elif what == "process" and not cancelled:
            self.window.statusBar().showMessage("Whole video processed: playback reads the cache", 8000)
        elif cancelled and not detail:
            self.window.statusBar().showMessage(f"Video {what} cancelled", 5000)
        self._request(self.index)
        self.jobDone.emit(what, cancelled)

    def _on_engine_failed(self, message: str) -> None:
        self.set_playing(False)
        self.window.show_error(message)


def install(window: Any) -> None:
    """Add File > Open Video… and the Video dock (see the module docstring)."""
    VideoFeature(window)
