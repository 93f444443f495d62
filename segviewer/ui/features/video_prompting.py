"""SAM 2 in the video view: prompt objects on frames, then propagate them through the timeline.

A "Track" dock (video view only) holds the mode switch, the object the clicks belong to, the
prompts so far, Undo / Clear, Propagate / Cancel. In prompt mode a click or drag on the frame on
screen adds a point or the box of the chosen object on that frame (as on an image, see
:class:`~segviewer.ui.features.prompting.CanvasPrompter`) and runs an image prompt on that frame
in the worker, so the object's mask shows at once. Propagate sends one
:class:`~segviewer.ui.worker.TrackRequest`: the worker's host (the app's child process) reads the
video itself and runs SAM 2's streaming video model from the first prompted frame to the end; each
frame's masks come back as they are made, are cached in the worker's result cache (the same LRU as
every model result, key :meth:`TrackRequest.frame_key`) and drawn when their frame is on screen.
Colours follow the object id (``Detections.instance_ids``), so an object keeps its colour on every
frame. Tracking needs a SAM 2 *video* checkpoint (``sam2_video``, as ``facebook/sam2.1-*`` are);
an image-only one is refused in one sentence.

The SAM 2 model and its weights are the image prompt mode's (the Prompt dock's choice; weights
from File > Load Weights…).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog

from segviewer.core.results import Detections, MaskSet
from segviewer.ui.features.prompting import Box, CanvasPrompter, Point, PromptFeature, next_seq
from segviewer.ui.widgets.track_panel import TrackPanel
from segviewer.ui.worker import PromptAnswer, PromptRequest, TrackRequest, image_key

__all__ = ["VideoPromptFeature", "install", "combine", "write_track_coco"]

VIEW = "video"
LAYER_NAME = "SAM 2 (tracked)"

Key = tuple[int, int]  # (object id, frame)
State = tuple[tuple[Point, ...], Box | None]


def combine(parts: dict[int, Detections], image_size: tuple[int, int]) -> Detections:
    """One Detections of the single-object answers in ``parts`` (object id -> its mask), with the
    object ids as ``instance_ids`` (their colours)."""
    ids = sorted(parts)
    crops, offsets, boxes, scores = [], [], [], []
    for i in ids:
        d = parts[i]
        assert d.masks is not None
        crops.append(d.masks.crops[0])
        offsets.append(d.masks.offsets[0])
        boxes.append(d.boxes[0])
        scores.append(d.scores[0])
    masks = MaskSet(image_size, tuple(crops), np.asarray(offsets, np.int32).reshape(-1, 2))
    return Detections(image_size, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                      np.zeros(len(ids), np.int32), ("object",), masks=masks,
                      instance_ids=np.asarray(ids, np.int64))


class VideoPromptFeature(QObject):
    """See the module docstring; one per window (``window.findChild(VideoPromptFeature)``)."""

    trackProgress = Signal(int)  # frames tracked so far by the running track
    previewShown = Signal(int)  # the frame whose prompt preview was just drawn

    def __init__(self, window: Any, video: Any, prompting: PromptFeature | None) -> None:
        super().__init__(window)
        self.setObjectName("video_prompt_feature")
        self.window, self.video, self.prompting = window, video, prompting
        self.worker = window.worker
        self.canvas = window.canvas
        self.active = False
        self.obj_id = 1
        self.prompts: dict[Key, State] = {}
        self.history: list[tuple[Key, State | None]] = []  # (key, its state before the change)
        self.previews: dict[Key, Detections] = {}  # the image prompt's best mask per object and frame
        self.preview_seq: dict[int, Key] = {}
        self.request: TrackRequest | None = None  # the last track sent (its frames are in the cache)
        self.tracked: set[int] = set()
        self.running = False

        self.panel = TrackPanel()
        self.dock = window.add_dock("Track", self.panel, Qt.DockWidgetArea.LeftDockWidgetArea,
                                    tab_with="Models", front=False, view=VIEW)
        self.prompter = CanvasPrompter(self.canvas, self._size, self.add_point, self.set_box)
        self.mask_item = pg.ImageItem(axisOrder="row-major")
        self.box_item = pg.ImageItem(axisOrder="row-major")
        for z, item in enumerate((self.mask_item, self.box_item)):
            item.setZValue(90 + z)
            item.setVisible(False)
            self.canvas.vb.addItem(item)
        self.mask_item.setOpacity(0.6)
        self.leave_action = QAction("Leave frame prompt mode", window)
        self.leave_action.setShortcut("Esc")
        self.leave_action.setEnabled(False)
        self.leave_action.triggered.connect(lambda: self.set_active(False))
        window.addAction(self.leave_action)

        p = self.panel
        p.modeToggled.connect(self.set_active)
        p.objectChanged.connect(self._on_object)
        p.newObjectRequested.connect(self.new_object)
        p.undoRequested.connect(self.undo)
        p.clearRequested.connect(self.clear)
        p.propagateRequested.connect(self.propagate)
        p.cancelRequested.connect(self.cancel)
        p.exportRequested.connect(self.export_dialog)
        video.frameShown.connect(self._on_frame)
        video.videoOpened.connect(lambda _n: self.reset())
        window.viewChanged.connect(lambda view: None if view == VIEW else self._left_video())
        self.worker.promptReady.connect(self._on_preview)
        self.worker.promptFailed.connect(self._on_prompt_failed)
        self.worker.trackFrame.connect(self._on_track_frame)
        self.worker.trackFinished.connect(self._on_track_finished)
        self.worker.trackFailed.connect(self._on_track_failed)
        session = window.session
        if hasattr(session, "weightsChanged"):
            session.weightsChanged.connect(lambda _mid: self._refresh_texts())
        self.dock.visibilityChanged.connect(lambda vis: self._refresh_texts() if vis else None)
        self._refresh_texts()

    # ---- model ----------------------------------------------------------------------------------
    def model(self) -> tuple[str | None, Any]:
        """The SAM 2 model id and its user weights (the Prompt dock's choice)."""
        if self.prompting is None or self.prompting.model_id is None:
            return None, None
        return self.prompting.model_id, self.prompting.weights()

    def _size(self) -> tuple[int, int] | None:
        src = self.video.source
        if not self.video.active or src is None or self.video.shown_index < 0:
            return None
        return int(src.size[0]), int(src.size[1])

    # ---- prompts ----------------------------------------------------------------------------------
    def set_active(self, on: bool) -> None:
        on = bool(on) and self.video.active and self.model()[0] is not None
        self.active = on
        self.prompter.set_active(on)
        self.panel.set_mode(on)
        self.leave_action.setEnabled(on)
        if on:
            self.video.set_playing(False)
            self.dock.show()
            self.dock.raise_()

    def _frame(self) -> int:
        return int(self.video.shown_index)

    def _change(self, key: Key, state: State | None) -> None:
        self.history.append((key, self.prompts.get(key)))
        self._apply(key, state)

    def _apply(self, key: Key, state: State | None) -> None:
        if state is None or (not state[0] and state[1] is None):
            self.prompts.pop(key, None)
            self.previews.pop(key, None)
        else:
            self.prompts[key] = state
            self._preview(key)
        self._refresh_texts()
        self._draw(self._frame())

    def add_point(self, x: float, y: float, positive: bool) -> None:
        key = (self.obj_id, self._frame())
        pts, box = self.prompts.get(key, ((), None))
        self._change(key, ((*pts, (float(x), float(y), bool(positive))), box))

    def set_box(self, box: Box) -> None:
        key = (self.obj_id, self._frame())
        pts, _ = self.prompts.get(key, ((), None))
        x0, y0, x1, y1 = box
        self._change(key, (pts, (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))))

    def undo(self) -> None:
        if self.history:
            key, before = self.history.pop()
            self._apply(key, before)

    def clear(self) -> None:
        self.cancel()
        self.prompts.clear()
        self.history.clear()
        self.previews.clear()
        self.request, self.tracked = None, set()
        self.panel.set_status("")
        self._refresh_texts()
        self._draw(self._frame())

    def reset(self) -> None:
        """A new video: nothing of the old one's prompts or tracks applies."""
        self.clear()
        self.obj_id = 1
        self.panel.obj.setValue(1)

    def new_object(self) -> None:
        used = [k[0] for k in self.prompts]
        self.panel.obj.setValue(max([self.obj_id, *used]) + 1)

    def _on_object(self, value: int) -> None:
        self.obj_id = int(value)
        self._draw(self._frame())

    def _left_video(self) -> None:
        self.set_active(False)
        self.cancel()
        for item in (self.mask_item, self.box_item):
            item.setVisible(False)
        self.prompter.draw((), None)

    # ---- the worker ------------------------------------------------------------------------------
    def _preview(self, key: Key) -> None:
        """The object's mask on its prompted frame, from an image prompt on that frame."""
        model_id, weights = self.model()
        frame = self.canvas.image
        src = self.video.source
        if model_id is None or frame is None or src is None or key[1] != self._frame():
            return
        pts, box = self.prompts[key]
        seq = next_seq()
        self.preview_seq = {seq: key}  # only the newest preview counts
        self.worker.request_prompt(PromptRequest(
            self.window.session.gen, seq, ("video", str(src.path), key[1]), frame, model_id,
            self.window.session.device, weights, points=pts, box=box))
        self.panel.set_status(f"Object {key[0]} on frame {key[1]}: running {model_id}…")

    def _on_preview(self, ans: PromptAnswer) -> None:
        key = self.preview_seq.pop(ans.request.seq, None)
        if key is None or key not in self.prompts:
            return
        det = ans.masks.detections()
        self.previews[key] = det
        self.panel.set_status(f"Object {key[0]} on frame {key[1]}: predicted IoU {float(det.scores[0]):.2f}")
        self._draw(self._frame())
        self.previewShown.emit(key[1])

    def _on_prompt_failed(self, seq: int, model_id: str, message: str) -> None:
        if self.preview_seq.pop(seq, None) is not None:
            self.panel.set_status(message, error=True)

    def object_prompts(self) -> tuple[Any, ...]:
        """The prompts as SAM 2 ``ObjectPrompt`` s, in (frame, object) order."""
        from segviewer.adapters.hf_sam2 import ObjectPrompt

        return tuple(ObjectPrompt(obj, frame, points=pts, box=box)
                     for (obj, frame), (pts, box) in sorted(self.prompts.items(), key=lambda kv: (kv[0][1], kv[0][0])))

    def propagate(self) -> bool:
        """Track every prompted object through the video in the worker (False: nothing to track)."""
        model_id, weights = self.model()
        src = self.video.source
        if model_id is None or src is None:
            return False
        if not self.prompts:
            self.panel.set_status("Prompt an object on a frame first (click or drag on it).", error=True)
            return False
        prompts = self.object_prompts()
        self.request = TrackRequest(self.window.session.gen, next_seq(), src.path, image_key(src.path), model_id,
                                    self.window.session.device, weights, prompts)
        self.tracked = set()
        self.running = True
        first = min(p.frame for p in prompts)
        self.panel.set_running(True, src.frame_count - first)
        self.panel.set_status(f"Tracking {len({p.obj_id for p in prompts})} object(s) from frame {first}…")
        self.set_active(False)
        self._refresh_texts()
        self.worker.request_track(self.request)
        return True

    def cancel(self) -> None:
        if self.running:
            self.worker.cancel_track()

    def _mine(self, seq: int) -> bool:
        return self.request is not None and seq == self.request.seq

    def _on_track_frame(self, seq: int, index: int, det: Detections) -> None:
        if not self._mine(seq):
            return
        self.tracked.add(int(index))
        self.panel.progress.setValue(len(self.tracked))
        self.trackProgress.emit(len(self.tracked))
        if self.panel.follow.isChecked() and self.video.active:
            self.video.seek(index)  # draws when the frame is on screen
        elif index == self._frame():
            self._draw(index)

    def _on_track_finished(self, seq: int, frames: int, cancelled: bool) -> None:
        if not self._mine(seq):
            return
        self.running = False
        self.panel.set_running(False)
        self.panel.set_status(f"Tracked {frames} frame{'s' if frames != 1 else ''}"
                              + (" (cancelled)" if cancelled else "") + "; the masks are cached.")
        self._refresh_texts()
        self._draw(self._frame())

    def tracked_frames(self) -> dict[int, Detections]:
        """The last track's masks by frame, from the worker's cache (frames evicted since are left out)."""
        if self.request is None:
            return {}
        out = {i: self.worker.cached_track_frame(self.request, i) for i in sorted(self.tracked)}
        return {i: d for i, d in out.items() if d is not None}

    def export_dialog(self) -> None:
        src = self.video.source
        if src is None or not self.tracked:
            self.window.show_error("Nothing tracked to export: prompt an object and press Propagate first.")
            return
        path, _ = QFileDialog.getSaveFileName(self.window, "Export tracked masks",
                                              str(src.path.with_name(src.path.stem + ".sam2_track.json")),
                                              "JSON (*.json)")
        if path:
            self.export(Path(path))

    def export(self, path: Path) -> None:
        """Write the tracked masks as COCO results in a background job: one record per object and
        frame, ``image_id`` the frame index, ``track_id`` the object id, RLE segmentation."""
        from segviewer.ui.jobs import run_background

        frames = self.tracked_frames()
        run_background(lambda: write_track_coco(path, frames), self._on_exported, self.window.show_error, "Export")

    def _on_exported(self, path: str) -> None:
        self.panel.set_status(f"Saved {path}")
        exported = getattr(self.window, "exported", None)
        if exported is not None:
            exported.emit(path)

    def _on_track_failed(self, seq: int, model_id: str, message: str) -> None:
        if not self._mine(seq):
            return
        self.running = False
        self.panel.set_running(False)
        self.panel.set_status(message, error=True)
        self.window.statusBar().showMessage(message, 10000)
        self._refresh_texts()

    # ---- drawing ----------------------------------------------------------------------------------
    def frame_result(self, index: int) -> Detections | None:
        """What is drawn on frame ``index``: the tracked masks (from the cache) when the last track
        reached it, else the prompt previews of the objects prompted there."""
        src = self.video.source
        if src is None or index < 0:
            return None
        if self.request is not None and index in self.tracked:
            det = self.worker.cached_track_frame(self.request, index)
            if det is not None:
                return det
        here = {k[0]: d for k, d in self.previews.items() if k[1] == index}
        return combine(here, src.size) if here else None

    def _on_frame(self, index: int) -> None:
        self._draw(index)

    def _draw(self, index: int) -> None:
        from segviewer.render.layers import render_layer

        src = self.video.source
        if src is None or not self.video.active:
            return
        det = self.frame_result(index)
        h, w = src.size
        for item, kind in ((self.mask_item, "masks"), (self.box_item, "boxes")):
            if det is not None and len(det):
                item.setImage(render_layer(det, kind), levels=None)
                item.setRect(QRectF(0, 0, w, h))
                item.setVisible(True)
            else:
                item.setVisible(False)
        pts = tuple(p for (obj, f), (points, _) in self.prompts.items() if f == index for p in points)
        box = self.prompts.get((self.obj_id, index), ((), None))[1]
        self.prompter.draw(pts, box)

    def _refresh_texts(self) -> None:
        model_id, weights = self.model()
        self.panel.model.setText(
            "No SAM 2 model is listed (the transformers extra is needed)." if model_id is None else
            f"Model: {model_id} · weights: {weights if weights is not None else 'none loaded (File > Load Weights…)'}")
        if not self.prompts:
            self.panel.prompts.setText("No prompts yet.")
        else:
            lines = []
            for (obj, frame), (pts, box) in sorted(self.prompts.items()):
                pos = sum(1 for p in pts if p[2])
                what = f"{pos}+ {len(pts) - pos}− point(s)" + (", a box" if box is not None else "")
                lines.append(f"object {obj}, frame {frame}: {what}")
            self.panel.prompts.setText("\n".join(lines))
        self.panel.undo.setEnabled(bool(self.history))
        self.panel.clear.setEnabled(bool(self.prompts) or self.request is not None)
        self.panel.export.setEnabled(bool(self.tracked) and not self.running)


def write_track_coco(path: Path, frames: dict[int, Detections]) -> str:
    """COCO results records of tracked masks (see :meth:`VideoPromptFeature.export`)."""
    from segviewer.core.coco_results import detections_to_coco
    from segviewer.core.fileio import write_json_atomic

    records = []
    for index, det in sorted(frames.items()):
        for rec, oid in zip(detections_to_coco(det, image_id=index), det.instance_ids.tolist(), strict=True):
            rec["track_id"] = int(oid)
            records.append(rec)
    write_json_atomic(path, records)
    return str(path)


def install(window: Any) -> None:
    """Add the Track dock to the video view (see the module docstring); needs the video feature."""
    from segviewer.ui.features.video import VideoFeature

    video = window.findChild(VideoFeature)
    if video is None:
        return
    VideoPromptFeature(window, video, window.findChild(PromptFeature))
