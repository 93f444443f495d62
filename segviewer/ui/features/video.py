"""Video with Deep Feature Flow in the window: File > Open Video… (Ctrl+Shift+V) and a "Video" dock.

The dock (:class:`~segviewer.ui.widgets.video_controls.VideoControls`) holds the timeline (key
frames as red ticks, computed frames blue), the DFF controls (model, key-frame interval 1..60,
adaptive schedule, agreement with the whole model), an instance model run on every frame whose
instances keep their colors while they move (tracked by mask IoU in
:class:`~segviewer.core.tracking.InstanceTracker`), the flow layer controls, the per-frame
readout, a plot of time and agreement per frame, and the process-whole-video / export jobs with
a progress bar and Cancel. This module is the stepping logic; the frame's canvas layers are
:class:`~segviewer.ui.features._video_layers.FrameLayers`.

Where things run: opening (which probes the file) runs in a pool job; frames are decoded ahead
by :class:`ReadAhead` on its thread and shown when ready (the UI never waits on the decoder);
DFF, whole-video processing and export run on :class:`VideoEngine`'s own thread.

Frames bypass the session: opening a video switches the window to the "video" view
(``window.set_view``), which closes the session's image, so the panels that described it
(layers, classes, metrics, internals) say there is no image instead of describing a picture that
is gone. The feature shows frames with ``canvas.set_image``, draws its own per-frame layers as
pyqtgraph items on ``canvas.vb``, answers the hover inspector for the frame on screen and fills
the legend with the frame's classes. Opening an image switches back: the dock is hidden and
emptied. While a video is open, Left/Right/PgUp/PgDown/Space drive the video (the window's
next/previous-image shortcuts are lifted and given back when an image is opened again).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QFileDialog

from segviewer.core.errors import SegviewerError
from segviewer.core.results import FlowField
from segviewer.render import flow as rflow
from segviewer.ui.features._video_engine import (
    EngineConfig,
    FrameReadout,
    VideoEngine,
    available_instance_models,
    available_models,
)
from segviewer.ui.features._video_keys import VideoKeys
from segviewer.ui.features._video_layers import FrameLayers, frame_lines, pixmap, readout_text
from segviewer.ui.jobs import run_background
from segviewer.ui.widgets.video_controls import VideoControls
from segviewer.video.keyframes import MAX_INTERVAL, FixedInterval
from segviewer.video.source import VIDEO_SUFFIXES, ReadAhead, VideoSource, open_video

__all__ = ["VideoFeature", "install", "readout_text"]

SCRUB_DEBOUNCE_MS = 150
PLOT_REFRESH_MS = 250
VIEW = "video"


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
        self.shown_index = -1  # the frame on the canvas (``index`` may be one still decoding)
        self._sized = False
        self.active = False
        self._pending: int | None = None
        self._fit_next = False
        self._max_flow = 0.0
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
        self.layers = FrameLayers(window.canvas.vb)
        for name in ("seg_item", "inst_item", "box_item", "color_item", "mag_item", "arrow_item"):
            setattr(self, name, getattr(self.layers, name))
        self.keys = VideoKeys(window, {"open": self.open_dialog, "open_folder": self.open_folder_dialog,
                                       "play": self.toggle_play, "step": self.step, "jump_key": self.jump_key})
        self.open_action, self.shortcuts = self.keys.open_action, self.keys.shortcuts
        window.viewChanged.connect(lambda view: None if view == VIEW else self.leave())
        window.canvas.hovered.connect(self._on_hover)
        if isinstance(getattr(window, "path_openers", None), list):
            window.path_openers.append(self.claim)

    # ---- construction ---------------------------------------------------------------------------
    def _build_dock(self) -> None:
        c = self.controls = VideoControls(available_models(), available_instance_models(), MAX_INTERVAL,
                                          pixmap(rflow.wheel_legend(41)))
        # the widgets the feature (and its tests) reach by name
        self.timeline, self.readout, self.plot, self.hover_label = c.timeline, c.readout, c.plot, c.hover_label
        self.model_box, self.instances_box, self.interval = c.model_box, c.instances_box, c.interval
        self.adaptive, self.reference, self.rim = c.adaptive, c.reference, c.rim
        self.show_seg, self.show_color, self.show_arrows, self.show_mag = (c.show_seg, c.show_color,
                                                                           c.show_arrows, c.show_mag)
        self.process_btn, self.export_btn, self.progress, self.cancel_btn = (c.process_btn, c.export_btn,
                                                                             c.progress, c.cancel_btn)
        self.panel = c
        c.setEnabled(False)
        self.dock = self.window.add_dock("Video", c, Qt.DockWidgetArea.BottomDockWidgetArea, scroll=False,
                                         view=VIEW)

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
        for sp in (c.arrow_step, c.arrow_scale, self.rim):
            sp.valueChanged.connect(lambda _=None: self._draw_layers())
        self.process_btn.clicked.connect(self.process_all)
        self.export_btn.clicked.connect(self.export_dialog)
        self.cancel_btn.clicked.connect(self.cancel_job)

    def _restore_settings(self) -> None:
        st = getattr(self.window, "settings", None)
        if st is not None:
            self.controls.restore(st)

    def _save_settings(self) -> None:
        st = getattr(self.window, "settings", None)
        if st is not None:
            self.controls.save(st)

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
        self._hide_layers()
        self.shown_index = -1
        self.controls.set_job(False)

    def enter(self) -> None:
        """Video mode: the window's video view (its image closed, the dock shown, the inspector
        asking here), the video keys take over from next/previous image."""
        self.active = True
        self.window.set_view(VIEW, self.inspect)
        self.dock.setVisible(True)
        if not self._sized:  # first time: a third of the height, the image keeps the rest
            self._sized = True
            self.window.resizeDocks([self.dock], [max(210, self.window.height() // 3)], Qt.Orientation.Vertical)
        self.panel.setEnabled(True)
        self.window.legend.set_entries([])
        self.keys.take()

    def leave(self) -> None:
        """An image was opened: stop the video, give the keys back, hide the frame's layers and
        empty the dock (the window hides it), so nothing of this video shows with the image."""
        if not self.active:
            return
        self.active = False
        self.close_video()
        self.controls.reset()
        self._max_flow = 0.0
        self.panel.setEnabled(False)
        self.keys.give_back()

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
        self.shown_index = i
        if self.active:
            self.window.refresh_inspector()
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
            names = (f"{self.model_box.currentText()} (DFF)", f"{self.instances_box.currentData()} (tracked)")
            self.layers.set_result(r.index, result, instances, flow, names)
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
        self.layers.hide()

    def rim_magnitude(self) -> float:
        """The flow length at the colour wheel's rim: the user's value, else the video's max so far."""
        v = float(self.rim.value())
        return v if v > 0 else (self._max_flow if self._max_flow > 0 else 1.0)

    def _draw_layers(self) -> None:
        if self.source is None:
            return
        rim = self.rim_magnitude()
        self.controls.legend_text.setText(f"rim: {rim:.1f} px")
        c = self.controls
        self.layers.draw(self.source.size, self.show_seg.isChecked(), self.show_color.isChecked(),
                         self.show_mag.isChecked(), self.show_arrows.isChecked(), rim,
                         int(c.arrow_step.value()), float(c.arrow_scale.value()))
        self._frame_panels()

    # ---- the window's panels for the frame on screen ---------------------------------------------
    @property
    def instances(self) -> Any:
        """The tracked Detections of the frame whose result is drawn (None without an instance model)."""
        return self.layers.instances

    def frame_results(self) -> dict[str, Any]:
        """The results drawn on the frame on screen, by name (for the inspector and the legend)."""
        return self.layers.results(self.shown_index, self.show_seg.isChecked())

    def inspect(self, x: float, y: float) -> list[str]:
        """The hover inspector's lines on a frame: pixel, colour, the DFF class and the tracked
        instance under (x, y), and the flow there; or that the frame has no result yet."""
        frame = self.window.canvas.image
        if not self.active or frame is None or self.shown_index < 0:
            return []
        computed = self.layers.index == self.shown_index
        waiting = "" if computed or self.engine is None else "no segmentation of this frame yet"
        return frame_lines(frame, self.shown_index, self.frame_results(), self._flow_at(x, y), x, y, waiting)

    def _frame_panels(self) -> None:
        """The legend lists the frame's classes; the inspector re-reads the point under the mouse."""
        from segviewer.ui.display import legend_entries

        if not self.active:
            return
        self.window.legend.set_entries(legend_entries(self.frame_results()))
        self.window.refresh_inspector()

    def _flow_at(self, x: float, y: float) -> tuple[float, float] | None:
        size = self.source.size if self.source is not None else (1, 1)
        return self.layers.flow_at(self.shown_index, x, y, size)

    def _on_hover(self, pos: tuple[float, float] | None) -> None:
        uv = None if not self.active or pos is None else self._flow_at(*pos)
        self.hover_label.setText("" if uv is None else f"(u, v) = ({uv[0]:+.2f}, {uv[1]:+.2f}) px")

    # ---- jobs -----------------------------------------------------------------------------------
    def process_all(self) -> bool:
        """Run DFF over every frame (then playback reads the cache); False if a job already runs."""
        if self.engine is None:
            return False
        self.set_playing(False)
        ok = self.engine.start_job("process")
        if ok:
            self.controls.set_job(True, "Processing %v/%m", self.frame_count)
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
            self.controls.set_job(True, "Exporting %v/%m", self.frame_count)
        return ok

    def cancel_job(self) -> None:
        if self.engine is not None:
            self.engine.cancel()

    def _on_progress(self, done: int, total: int, what: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_job_finished(self, what: str, cancelled: bool, detail: str) -> None:
        self.controls.set_job(False)
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
