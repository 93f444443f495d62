"""SAM 2 prompts on the image: Model > Prompt with SAM 2 (P), and a "Prompt" dock.

In prompt mode a left click on the image adds a positive point, a right click (or Shift+click) a
negative one, and a drag draws the box (one box per prompt; a new drag replaces it). Each change
sends the whole prompt (every point and the box) to the inference worker as a
:class:`~segviewer.ui.worker.PromptRequest`: the model runs in the worker's host (the app's
child process), never on the UI thread; SAM 2 caches the image embedding there, so only the first
click on an image pays for the encoder. The answer's candidate masks (three, with their predicted
IoUs) fill the dock's gallery; the picked one (the best by default) is shown as an instance layer
``sam2 prompt`` (a derived result, as ground truth is: it takes the score slider like any layer,
its score being the predicted IoU) and can be saved as a COCO results record with an RLE mask.
Backspace (or Undo point) takes back the last point or box, Clear forgets the prompt, Esc leaves
the mode. Pan with the middle button and zoom with the wheel while prompting.

Weights: SAM 2 has none bundled. The model loads a ``save_pretrained`` folder chosen with
File > Load Weights… (the SAM 2 model highlighted), else the Hugging Face cache, else a download;
when none is possible the dock says so in one sentence, with what to do.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt
from PySide6.QtGui import QAction, QMouseEvent, QPen
from PySide6.QtWidgets import QFileDialog, QGraphicsRectItem

from segviewer.ui.widgets.prompt_panel import PromptPanel, mask_thumbnail
from segviewer.ui.worker import PromptAnswer, PromptRequest

__all__ = ["PromptFeature", "CanvasPrompter", "install", "LAYER", "is_sam2", "write_prompt_coco", "next_seq"]

LAYER = "sam2 prompt"  # the derived result's name: its layers are "sam2 prompt / instances", ...
DRAG_PX = 6  # a press that moves further than this (screen pixels) draws a box instead of a point
IMAGE_VIEW = "image"

Point = tuple[float, float, bool]
Box = tuple[float, float, float, float]


_SEQ = itertools.count(1)


def next_seq() -> int:
    """A prompt or track number unique in this process: the image's and the video's prompts share
    the worker's signals, so each recognises its own answers by it."""
    return next(_SEQ)


def is_sam2(card: Any) -> bool:
    """Whether ``card`` is a SAM 2 model (its adapter takes point and box prompts)."""
    extra = getattr(card, "extra", None) or {}
    return extra.get("hf_family") == "sam2" or str(extra.get("adapter", "")).endswith(":HFSam2")


class CanvasPrompter(QObject):
    """Turns mouse input on the canvas into prompt points and boxes, and draws them.

    While :attr:`active`, a left click calls ``on_point(x, y, True)``, a right click or
    Shift+click ``on_point(x, y, False)`` and a left drag ``on_box((x0, y0, x1, y1))`` (normalised),
    in the pixels of the picture whose size ``size()`` gives (None: nothing on screen). The events
    are consumed, so the view does not pan and other click handlers (the Internals dock) do not see
    them; the middle button and the wheel still pan and zoom. Shared by the image's prompt mode and
    the video's (``features/video_prompting.py``)."""

    def __init__(self, canvas: Any, size: Callable[[], tuple[int, int] | None],
                 on_point: Callable[[float, float, bool], None], on_box: Callable[[Box], None]) -> None:
        super().__init__(canvas)
        self.canvas, self.size, self.on_point, self.on_box = canvas, size, on_point, on_box
        self.active = False
        self._press: tuple[QPointF, Qt.MouseButton, bool] | None = None
        self._dragging = False
        self._box: Box | None = None
        self.markers = pg.ScatterPlotItem(pxMode=True, size=13, hoverable=False)
        self.markers.setZValue(1e6)
        self.box_item = QGraphicsRectItem()
        pen = QPen(Qt.GlobalColor.yellow)
        pen.setCosmetic(True)
        pen.setWidth(2)
        pen.setStyle(Qt.PenStyle.DashLine)
        self.box_item.setPen(pen)
        self.box_item.setZValue(1e6)
        self.box_item.setVisible(False)
        canvas.vb.addItem(self.markers, ignoreBounds=True)
        canvas.vb.addItem(self.box_item, ignoreBounds=True)
        canvas.viewport().installEventFilter(self)

    def set_active(self, on: bool) -> None:
        self.active = bool(on)
        self._press, self._dragging = None, False
        if on:
            self.canvas.viewport().setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.canvas.viewport().unsetCursor()

    def draw(self, points: tuple[Point, ...], box: Box | None) -> None:
        """Markers for ``points`` (green + positive, red x negative) and the dashed ``box``."""
        spots = [{"pos": (x, y), "symbol": "+" if pos else "x",
                  "brush": pg.mkBrush(60, 220, 90) if pos else pg.mkBrush(235, 70, 70),
                  "pen": pg.mkPen(20, 20, 20, width=1)} for x, y, pos in points]
        self.markers.setData(spots)
        self.draw_box(box)

    def draw_box(self, box: Box | None) -> None:
        self._box = box
        self.box_item.setVisible(box is not None)
        if box is not None:
            self.box_item.setRect(QRectF(box[0], box[1], box[2] - box[0], box[3] - box[1]))

    def _image_point(self, pos: QPointF) -> tuple[float, float] | None:
        size = self.size()
        if size is None:
            return None
        p = self.canvas.vb.mapSceneToView(self.canvas.mapToScene(pos.toPoint()))
        h, w = size
        return float(min(max(p.x(), 0.0), w - 1.0)), float(min(max(p.y(), 0.0), h - 1.0))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if not self.active or self.size() is None:
            return False
        et = event.type()
        if et not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease,
                      QEvent.Type.MouseButtonDblClick):
            return False
        assert isinstance(event, QMouseEvent)
        if et in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonDblClick):
            if event.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
                return False  # the middle button still pans
            shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            self._press, self._dragging = (event.position(), event.button(), shift), False
            return True
        if self._press is None:
            return False
        start, button, shift = self._press
        if et == QEvent.Type.MouseMove:
            far = (event.position() - start).manhattanLength() > DRAG_PX
            if far and button == Qt.MouseButton.LeftButton and not shift:
                self._dragging = True
                a, b = self._image_point(start), self._image_point(event.position())
                if a is not None and b is not None:
                    self.box_item.setVisible(True)
                    self.box_item.setRect(QRectF(QPointF(*a), QPointF(*b)).normalized())
            return True
        self._press = None  # release
        if self._dragging:
            self._dragging = False
            a, b = self._image_point(start), self._image_point(event.position())
            if a is not None and b is not None and abs(a[0] - b[0]) >= 1 and abs(a[1] - b[1]) >= 1:
                self.on_box((min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])))
            else:  # too small to be a box: show the prompt's own box again
                self.draw_box(self._box)
            return True
        p = self._image_point(start)
        if p is not None:
            self.on_point(p[0], p[1], button == Qt.MouseButton.LeftButton and not shift)
        return True


class PromptFeature(QObject):
    """See the module docstring; one per window (``window.findChild(PromptFeature)``)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.setObjectName("prompt_feature")
        self.window = window
        self.session = window.session
        self.worker = window.worker
        self.canvas = window.canvas
        self.active = False
        self.model_id: str | None = None
        # the prompt's history: each entry is the whole prompt after one user action (undo = pop)
        self.history: list[tuple[tuple[Point, ...], Box | None]] = []
        self.seq = 0
        self.answer: PromptAnswer | None = None
        self.picked = -1
        self.running = False

        self.panel = PromptPanel()
        # the left column (Models, Dataset, …) is tall enough for the candidate gallery
        self.dock = window.add_dock("Prompt", self.panel, Qt.DockWidgetArea.LeftDockWidgetArea,
                                    tab_with="Models", front=False, view=IMAGE_VIEW)
        self.toggle = QAction("&Prompt with SAM 2", window)
        self.toggle.setCheckable(True)
        self.toggle.setShortcut("P")
        self.toggle.setStatusTip("Click points or drag a box on the image to get SAM 2 masks")
        self.toggle.toggled.connect(self.set_active)
        window.addAction(self.toggle)
        for act in window.menuBar().actions():
            if act.text().replace("&", "") == "Model" and act.menu() is not None:
                act.menu().addSeparator()
                act.menu().addAction(self.toggle)
        self.leave = QAction("Leave prompt mode", window)
        self.leave.setShortcut("Esc")
        self.leave.setEnabled(False)
        self.leave.triggered.connect(lambda: self.set_active(False))
        self.undo_action = QAction("Undo last point", window)
        self.undo_action.setShortcut("Backspace")
        self.undo_action.setEnabled(False)
        self.undo_action.triggered.connect(self.undo)
        window.addAction(self.leave)
        window.addAction(self.undo_action)

        self.prompter = CanvasPrompter(self.canvas, self._size, self.add_point, self.set_box)
        self.markers, self.box_item = self.prompter.markers, self.prompter.box_item

        p = self.panel
        p.modeToggled.connect(self.set_active)
        p.modelChosen.connect(self._on_model_chosen)
        p.candidatePicked.connect(self.pick)
        p.undoRequested.connect(self.undo)
        p.clearRequested.connect(self.clear)
        p.exportRequested.connect(self.export_dialog)
        self.worker.promptReady.connect(self._on_answer)
        self.worker.promptFailed.connect(self._on_failed)
        self.session.imageShown.connect(self._on_new_image)
        self.session.imageClosed.connect(self._on_image_closed)
        if hasattr(self.session, "weightsChanged"):
            self.session.weightsChanged.connect(lambda mid: self._update_weights_text() if mid == self.model_id else None)
        if hasattr(window, "modelsListed"):
            window.modelsListed.connect(self.refresh_models)
        picker = getattr(window, "picker", None)
        if picker is not None:  # the highlighted model is the one File > Load Weights… acts on
            picker.currentChanged.connect(lambda *_: self.refresh_models())
        self.dock.visibilityChanged.connect(lambda vis: self._update_weights_text() if vis else None)
        self.refresh_models()

    # ---- models and weights ---------------------------------------------------------------------
    def sam_models(self) -> list[str]:
        return [c.id for c in getattr(self.window, "cards", []) if is_sam2(c)]

    def refresh_models(self) -> None:
        ids = self.sam_models()
        current = self.window.picker.current() if hasattr(self.window, "picker") else None
        if current not in ids:
            current = self.model_id if self.model_id in ids else (ids[0] if ids else None)
        self.model_id = current
        self.panel.set_models(ids, current)
        self._update_weights_text()

    def _on_model_chosen(self, model_id: str) -> None:
        if model_id != self.model_id:
            self.model_id = model_id
            self._update_weights_text()
            self._submit()

    def weights(self) -> Path | None:
        return self.session.weights.get(self.model_id) if self.model_id else None

    def _update_weights_text(self) -> None:
        if not self.model_id:
            return
        folder = self.weights()
        card = next((c for c in getattr(self.window, "cards", []) if c.id == self.model_id), None)
        repo = (getattr(card, "extra", None) or {}).get("hf_repo", "")
        state = getattr(self.window, "base_states", {}).get(self.model_id, "")
        if folder is not None:
            text = f"Weights: {folder}"
        elif state == "cached":
            text = f"Weights: {repo} from the Hugging Face cache."
        else:
            text = (f"No SAM 2 weights on this machine yet: highlight {self.model_id} in Models, then "
                    f"File > Load Weights… (Ctrl+Shift+W) and pick its save_pretrained folder"
                    + (f" (e.g. a copy of {repo})." if repo else "."))
        self.panel.set_weights_text(text)

    # ---- the mode ---------------------------------------------------------------------------------
    def set_active(self, on: bool) -> None:
        """Enter or leave prompt mode (the prompt and its mask stay until cleared)."""
        on = bool(on) and self.model_id is not None
        if on and (self.session.image is None or getattr(self.window, "view", IMAGE_VIEW) != IMAGE_VIEW):
            video = getattr(self.window, "view", IMAGE_VIEW) != IMAGE_VIEW
            self.window.statusBar().showMessage("In the video view, prompt SAM 2 from the Track dock." if video
                                                else "Open an image to prompt SAM 2 on it.", 5000)
            on = False
        self.active = on
        self.toggle.blockSignals(True)
        self.toggle.setChecked(on)
        self.toggle.blockSignals(False)
        self.panel.set_mode(on)
        self.leave.setEnabled(on)
        self.undo_action.setEnabled(on)
        self.prompter.set_active(on)
        if on:
            self.dock.show()
            self.dock.raise_()
            self.window.statusBar().showMessage("Prompt mode: " + self.panel.help.text(), 8000)

    @property
    def points(self) -> tuple[Point, ...]:
        return self.history[-1][0] if self.history else ()

    @property
    def box(self) -> Box | None:
        return self.history[-1][1] if self.history else None

    def add_point(self, x: float, y: float, positive: bool) -> None:
        self.history.append(((*self.points, (float(x), float(y), bool(positive))), self.box))
        self._changed()

    def set_box(self, box: Box) -> None:
        x0, y0, x1, y1 = box
        self.history.append((self.points, (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))))
        self._changed()

    def undo(self) -> None:
        if self.history:
            self.history.pop()
            self._changed()

    def clear(self) -> None:
        self.history.clear()
        self._changed()

    def _changed(self) -> None:
        self._draw_prompt()
        if self.points or self.box is not None:
            self._submit()
        else:
            self.seq = next_seq()  # an answer still in flight is for a prompt that is gone
            self.running = False
            self._set_answer(None)
            self.panel.set_status("")

    # ---- worker ------------------------------------------------------------------------------------
    def _submit(self) -> None:
        s = self.session
        if self.model_id is None or s.image is None or s.key is None or not (self.points or self.box):
            return
        self.seq = next_seq()
        self.running = True
        self._update_weights_text()
        self.worker.request_prompt(PromptRequest(
            s.gen, self.seq, s.key, s.image, self.model_id, s.device, self.weights(),
            points=self.points, box=self.box))
        self.panel.set_status(f"{self._describe()} · running {self.model_id}…")
        self._update_buttons()

    def _describe(self) -> str:
        pos = sum(1 for p in self.points if p[2])
        neg = len(self.points) - pos
        parts = [f"{len(self.points)} point{'s' if len(self.points) != 1 else ''}"
                 + (f" ({pos} positive, {neg} negative)" if self.points else "")]
        if self.box is not None:
            parts.append("a box")
        return " and ".join(parts)

    def _on_answer(self, ans: PromptAnswer) -> None:
        if ans.request.seq != self.seq or ans.request.image_key != self.session.key:
            return  # an older prompt, or another image
        self.running = False
        self._set_answer(ans, ans.masks.best)

    def _on_failed(self, seq: int, model_id: str, message: str) -> None:
        if seq != self.seq:
            return
        self.running = False
        self.panel.set_status(message, error=True)
        self.window.statusBar().showMessage(message, 10000)
        self._update_buttons()

    def _set_answer(self, ans: PromptAnswer | None, picked: int = -1) -> None:
        self.answer = ans
        image = self.session.image
        if ans is None or image is None:
            self.picked = -1
            self.panel.set_candidates([], [], -1)
            self.session.set_derived(LAYER, None)
        else:
            masks = ans.masks.masks
            thumbs = [mask_thumbnail(image, masks, i) for i in range(len(masks))]
            self.panel.set_candidates(thumbs, [float(v) for v in ans.masks.ious], picked)
            self.pick(picked)
        self._update_buttons()

    def pick(self, i: int) -> None:
        """Show candidate ``i`` of the answer as the ``sam2 prompt`` layer."""
        if self.answer is None or not 0 <= i < len(self.answer.masks.ious):
            return
        self.picked = int(i)
        det = self.answer.masks.detections(self.picked)
        self.session.set_derived(LAYER, det)
        iou = float(det.scores[0])
        text = (f"{self._describe()} · candidate {self.picked + 1} of {len(self.answer.masks.ious)}, "
                f"predicted IoU {iou:.2f} · {sum(self.answer.timings.values()):.2f} s")
        thr = float(getattr(getattr(self.window, "state", None), "score_threshold", 0.0))
        if iou < thr:
            text += f" · the layer is hidden: its IoU is under the score slider ({thr:.2f})"
        self.panel.set_status(text)
        for b_i, b in enumerate(self.panel.candidates):
            b.setChecked(b_i == self.picked)

    def mask(self) -> Any | None:
        """The picked candidate as Detections (one ``object``), or None."""
        return None if self.answer is None or self.picked < 0 else self.answer.masks.detections(self.picked)

    def _update_buttons(self) -> None:
        n_pts = len(self.points)
        self.panel.set_prompt_state(n_pts, int(self.box is not None), self.answer is not None)

    # ---- image changes ---------------------------------------------------------------------------
    def _on_new_image(self) -> None:
        """Another image: the prompt described the previous one (the session cleared its layer)."""
        self.history.clear()
        self.seq = next_seq()
        self.running = False
        self.answer, self.picked = None, -1
        self.panel.set_candidates([], [], -1)
        self.panel.set_status("")
        self._draw_prompt()
        self._update_buttons()

    def _on_image_closed(self) -> None:
        self._on_new_image()
        self.set_active(False)

    # ---- drawing the prompt ----------------------------------------------------------------------
    def _size(self) -> tuple[int, int] | None:
        image = self.session.image
        return None if image is None else (int(image.shape[0]), int(image.shape[1]))

    def _draw_prompt(self) -> None:
        self.prompter.draw(self.points, self.box)

    # ---- export --------------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        if self.mask() is None:
            self.window.show_error("No SAM 2 mask to export: click on the image in prompt mode first.")
            return
        base = self.session.path.with_suffix(".sam2.json") if self.session.path else Path("sam2.json")
        path, _ = QFileDialog.getSaveFileName(self.window, "Export SAM 2 mask", str(base), "JSON (*.json)")
        if path:
            self.export(Path(path))

    def export(self, path: Path) -> None:
        """Write the picked mask as COCO results (RLE segmentation, score = predicted IoU) in a
        background job; the image id is the dataset's when the image belongs to one beside it."""
        from segviewer.ui.jobs import run_background

        det = self.mask()
        if det is None:
            return
        image_path = self.session.path
        run_background(lambda: write_prompt_coco(path, det, image_path), self._on_exported,
                       self.window.show_error, "Export")

    def _on_exported(self, path: str) -> None:
        self.panel.set_status(f"Saved {path}")
        exported = getattr(self.window, "exported", None)
        if exported is not None:
            exported.emit(path)


def write_prompt_coco(path: Path, det: Any, image_path: Path | None) -> str:
    """COCO results records of a prompted mask: ``category_id`` 0 (SAM's masks have no class; the
    card names it ``object``), the dataset's image id when ``image_path`` is in one (else 0)."""
    from segviewer.core.coco_results import detections_to_coco
    from segviewer.core.fileio import write_json_atomic
    from segviewer.ui.export import dataset_ids_for

    _, image_id = dataset_ids_for(image_path)
    write_json_atomic(path, detections_to_coco(det, image_id=image_id if image_id is not None else 0))
    return str(path)


def install(window: Any) -> None:
    """Add prompt mode and the Prompt dock (see the module docstring)."""
    PromptFeature(window)


