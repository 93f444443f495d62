"""The Track dock's panel (video view): SAM 2 prompts on frames, one object at a time, then
propagation through the video. Only widgets: ``features/video_prompting.py`` drives it."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

__all__ = ["TrackPanel", "TRACK_HELP"]

TRACK_HELP = ("On a frame: left click = positive point, right or Shift+click = negative, drag = box, "
              "for the object chosen below. Then Propagate tracks every prompted object from its "
              "first prompted frame to the end of the video.")


class TrackPanel(QWidget):
    """See the module docstring. Signals carry the user's wishes; nothing runs here."""

    modeToggled = Signal(bool)
    objectChanged = Signal(int)
    newObjectRequested = Signal()
    undoRequested = Signal()
    clearRequested = Signal()
    propagateRequested = Signal()
    cancelRequested = Signal()
    exportRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.mode = QPushButton("Prompt on frames (SAM 2)")
        self.mode.setCheckable(True)
        self.mode.toggled.connect(self.modeToggled)
        lay.addWidget(self.mode)
        self.model = QLabel()
        self.model.setWordWrap(True)
        self.model.setStyleSheet("color: #8a8a8a;")
        lay.addWidget(self.model)
        self.help = QLabel(TRACK_HELP)
        self.help.setWordWrap(True)
        self.help.setStyleSheet("color: #8a8a8a;")
        lay.addWidget(self.help)

        row = QHBoxLayout()
        row.addWidget(QLabel("Object"))
        self.obj = QSpinBox()
        self.obj.setRange(1, 999)
        self.obj.setToolTip("The object the next clicks belong to (its colour stays the same on every frame)")
        self.obj.valueChanged.connect(self.objectChanged)
        row.addWidget(self.obj)
        self.new_obj = QPushButton("New object")
        self.new_obj.clicked.connect(self.newObjectRequested)
        row.addWidget(self.new_obj)
        row.addStretch(1)
        lay.addLayout(row)

        self.prompts = QLabel("No prompts yet.")
        self.prompts.setWordWrap(True)
        lay.addWidget(self.prompts)

        row = QHBoxLayout()
        self.undo = QPushButton("Undo")
        self.undo.clicked.connect(self.undoRequested)
        self.clear = QPushButton("Clear")
        self.clear.clicked.connect(self.clearRequested)
        row.addWidget(self.undo)
        row.addWidget(self.clear)
        lay.addLayout(row)

        row = QHBoxLayout()
        self.propagate = QPushButton("Propagate")
        self.propagate.setToolTip("Track the prompted objects through the video (SAM 2's memory)")
        self.propagate.clicked.connect(self.propagateRequested)
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(self.cancelRequested)
        self.cancel.setEnabled(False)
        self.export = QPushButton("Export…")
        self.export.setToolTip("Save the tracked masks as COCO results (RLE; image_id = frame, track_id = object)")
        self.export.clicked.connect(self.exportRequested)
        self.export.setEnabled(False)
        row.addWidget(self.propagate)
        row.addWidget(self.cancel)
        row.addWidget(self.export)
        lay.addLayout(row)
        self.follow = QCheckBox("Follow the tracked frame")
        self.follow.setChecked(True)
        self.follow.setToolTip("Show each frame as it is tracked")
        lay.addWidget(self.follow)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        lay.addWidget(self.progress)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)
        lay.addStretch(1)

    def set_mode(self, on: bool) -> None:
        """Show prompt mode on or off (without emitting ``modeToggled``)."""
        self.mode.blockSignals(True)
        self.mode.setChecked(on)
        self.mode.blockSignals(False)
        self.mode.setText("Prompting… (Esc leaves)" if on else "Prompt on frames (SAM 2)")
        self.mode.setStyleSheet("QPushButton { background: #2f6f3e; color: white; font-weight: bold; }" if on else "")

    def set_running(self, running: bool, total: int = 0) -> None:
        self.cancel.setEnabled(running)
        self.propagate.setEnabled(not running)
        self.progress.setVisible(running)
        if running:
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(0)

    def set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #d0605e;" if error else "")
