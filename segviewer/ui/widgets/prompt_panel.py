"""The Prompt dock's panel: SAM 2 prompt mode on/off, which SAM 2 model, the three candidate masks
(thumbnails with their predicted IoUs, one picked), Undo last point / Clear / Export, and one line
saying what happens (or why nothing can). Only widgets: the prompting feature drives it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from segviewer.core.results import MaskSet

__all__ = ["PromptPanel", "mask_thumbnail", "HELP"]

THUMB = 60  # px, the longer side of a candidate's thumbnail
HELP = ("Left click: positive point · Right or Shift+click: negative point · Drag: box · "
        "Backspace: undo last point · Esc: leave prompt mode")


def mask_thumbnail(image: np.ndarray, masks: MaskSet, i: int, size: int = THUMB) -> np.ndarray:
    """A small RGB picture of mask ``i`` over ``image`` (the mask tinted, the rest dimmed), nearest
    neighbour subsampled to ``size`` on its longer side straight from the mask's crop (no full-size
    mask is built: cheap on the UI thread even for a very large image)."""
    h, w = masks.image_size
    step = max(1, int(np.ceil(max(h, w) / size)))
    ys, xs = np.arange(0, h, step), np.arange(0, w, step)
    m = np.zeros((len(ys), len(xs)), bool)
    crop = masks.crops[i]
    if crop.size:
        x0, y0 = (int(v) for v in masks.offsets[i])
        iy, ix = ys - y0, xs - x0
        vy, vx = (iy >= 0) & (iy < crop.shape[0]), (ix >= 0) & (ix < crop.shape[1])
        m[np.ix_(vy, vx)] = crop[np.ix_(iy[vy], ix[vx])]
    img = image[::step, ::step].astype(np.float32)
    out = img * 0.35
    tint = np.array([255.0, 200.0, 40.0], np.float32)
    out[m] = img[m] * 0.45 + tint * 0.55
    return np.ascontiguousarray(out.clip(0, 255).astype(np.uint8))


def _icon(rgb: np.ndarray) -> QIcon:
    h, w = rgb.shape[:2]
    qimg = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QIcon(QPixmap.fromImage(qimg))


class PromptPanel(QWidget):
    """See the module docstring. Signals carry the user's wishes; nothing runs here."""

    modeToggled = Signal(bool)
    modelChosen = Signal(str)
    candidatePicked = Signal(int)
    undoRequested = Signal()
    clearRequested = Signal()
    exportRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.mode = QPushButton("Prompt (SAM 2)")
        self.mode.setCheckable(True)
        self.mode.setToolTip("Click or drag on the image to ask SAM 2 for a mask (P)")
        self.mode.toggled.connect(self.modeToggled)
        lay.addWidget(self.mode)

        row = QHBoxLayout()
        row.addWidget(QLabel("Model"))
        self.model = QComboBox()
        self.model.setToolTip("The SAM 2 model that answers the prompts (its weights: File > Load Weights…)")
        self.model.currentTextChanged.connect(lambda t: self.modelChosen.emit(t) if t else None)
        row.addWidget(self.model, 1)
        lay.addLayout(row)
        self.weights = QLabel()
        self.weights.setWordWrap(True)
        self.weights.setStyleSheet("color: #8a8a8a;")
        lay.addWidget(self.weights)

        self.help = QLabel(HELP)
        self.help.setWordWrap(True)
        self.help.setStyleSheet("color: #8a8a8a;")
        lay.addWidget(self.help)

        lay.addWidget(QLabel("Candidates (predicted IoU)"))
        cands = QHBoxLayout()
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.candidates: list[QToolButton] = []
        for i in range(3):
            b = QToolButton()
            b.setCheckable(True)
            b.setEnabled(False)
            b.setIconSize(QSize(THUMB, THUMB))
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
            b.setText("—")
            self.group.addButton(b, i)
            cands.addWidget(b)
            self.candidates.append(b)
        cands.addStretch(1)
        self.group.idClicked.connect(self.candidatePicked)
        lay.addLayout(cands)

        buttons = QHBoxLayout()
        self.undo = QPushButton("Undo")
        self.undo.setToolTip("Take back the last point or box (Backspace)")
        self.undo.clicked.connect(self.undoRequested)
        self.clear = QPushButton("Clear")
        self.clear.setToolTip("Forget every point, the box and the mask")
        self.clear.clicked.connect(self.clearRequested)
        self.export = QPushButton("Export…")
        self.export.setToolTip("Save the picked mask as a COCO results record (RLE segmentation)")
        self.export.clicked.connect(self.exportRequested)
        for b in (self.undo, self.clear, self.export):
            buttons.addWidget(b)
        lay.addLayout(buttons)

        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)
        lay.addStretch(1)
        self.set_prompt_state(0, 0, False)

    # ---- filled by the feature -----------------------------------------------------------------
    def set_models(self, ids: Sequence[str], current: str | None) -> None:
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItems(list(ids))
        if current in ids:
            self.model.setCurrentText(current)
        self.model.blockSignals(False)
        self.mode.setEnabled(bool(ids))
        if not ids:
            self.weights.setText("No SAM 2 model is listed: the transformers extra is needed "
                                 "(pip install 'segviewer[transformers]').")

    def set_mode(self, on: bool) -> None:
        """Show prompt mode on or off (without emitting ``modeToggled``)."""
        self.mode.blockSignals(True)
        self.mode.setChecked(on)
        self.mode.blockSignals(False)
        self.mode.setText("Prompting… (Esc leaves)" if on else "Prompt (SAM 2)")
        self.mode.setStyleSheet("QPushButton { background: #2f6f3e; color: white; font-weight: bold; }" if on else "")

    def set_weights_text(self, text: str) -> None:
        self.weights.setText(text)

    def set_candidates(self, thumbs: Sequence[np.ndarray], ious: Sequence[float], picked: int) -> None:
        """Thumbnails and predicted IoUs of the candidates (none: cleared); ``picked`` checked."""
        for i, b in enumerate(self.candidates):
            if i < len(thumbs):
                b.setIcon(_icon(thumbs[i]))
                b.setText(f"IoU {float(ious[i]):.2f}")
                b.setEnabled(True)
                b.setChecked(i == picked)
            else:
                b.setIcon(QIcon())
                b.setText("—")
                b.setEnabled(False)
        if not len(thumbs):
            self.group.setExclusive(False)
            for b in self.candidates:
                b.setChecked(False)
            self.group.setExclusive(True)

    def set_prompt_state(self, n_points: int, n_boxes: int, have_mask: bool) -> None:
        self.undo.setEnabled(n_points + n_boxes > 0)
        self.clear.setEnabled(n_points + n_boxes > 0 or have_mask)
        self.export.setEnabled(have_mask)

    def set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #d0605e;" if error else "")
