"""The video timeline: play button, a slider with key frames drawn as ticks, a frame number box
and the time. It only reports what the user asks for (``frameRequested``, ``playToggled``); the
video feature decides what to show."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QStyle,
    QStyleOptionSlider,
    QToolButton,
    QWidget,
)

from segviewer.ui.widgets.controls import FocusSlider, FocusSpinBox

__all__ = ["KeyTickSlider", "Timeline", "format_time"]

KEY_COLOR = QColor(230, 70, 60)
DONE_COLOR = QColor(80, 170, 255)


def format_time(seconds: float) -> str:
    """``m:ss.ss`` for the time label."""
    m, s = divmod(max(float(seconds), 0.0), 60.0)
    return f"{int(m)}:{s:05.2f}"


class KeyTickSlider(FocusSlider):
    """A horizontal slider that marks key frames (red ticks above) and computed frames (blue below)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.keys: tuple[int, ...] = ()
        self.done: tuple[int, ...] = ()
        self.setMinimumHeight(28)

    def set_keys(self, keys: Sequence[int]) -> None:
        self.keys = tuple(int(k) for k in keys)
        self.update()

    def set_done(self, frames: Sequence[int]) -> None:
        self.done = tuple(int(k) for k in frames)
        self.update()

    def tick_x(self, value: int) -> int:
        """Widget x of ``value``'s handle centre (the tick position)."""
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        groove = self.style().subControlRect(QStyle.ComplexControl.CC_Slider, opt,
                                             QStyle.SubControl.SC_SliderGroove, self)
        handle = self.style().subControlRect(QStyle.ComplexControl.CC_Slider, opt,
                                             QStyle.SubControl.SC_SliderHandle, self)
        span = groove.width() - handle.width()
        x = QStyle.sliderPositionFromValue(self.minimum(), self.maximum(), value, max(span, 0))
        return groove.x() + x + handle.width() // 2

    def paintEvent(self, ev: QPaintEvent) -> None:  # noqa: N802 - Qt override
        super().paintEvent(ev)
        if not (self.keys or self.done) or self.maximum() <= self.minimum():
            return
        p = QPainter(self)
        h = self.height()
        p.setPen(QPen(DONE_COLOR, 1))
        for v in self.done:
            x = self.tick_x(v)
            p.drawLine(x, h - 4, x, h - 1)
        p.setPen(QPen(KEY_COLOR, 2))
        for v in self.keys:
            x = self.tick_x(v)
            p.drawLine(x, 0, x, 6)
        p.end()


class Timeline(QWidget):
    """Play/pause, step buttons, the tick slider, a frame box (type a number) and the time."""

    frameRequested = Signal(int)
    playToggled = Signal(bool)
    stepRequested = Signal(int)  # -1 / +1 frames
    keyJumpRequested = Signal(int)  # -1 / +1 key frames

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.fps = 30.0
        def button(icon: QStyle.StandardPixmap, tip: str) -> QToolButton:
            b = QToolButton()
            b.setIcon(self.style().standardIcon(icon))  # emoji glyphs are missing from many fonts
            b.setToolTip(tip)
            return b

        sp = QStyle.StandardPixmap
        self.play = button(sp.SP_MediaPlay, "Play / pause (Space)")
        self.play.setCheckable(True)
        self.prev_key = button(sp.SP_MediaSkipBackward, "Previous key frame (PgUp)")
        self.prev = button(sp.SP_MediaSeekBackward, "Previous frame (Left)")
        self.next = button(sp.SP_MediaSeekForward, "Next frame (Right)")
        self.next_key = button(sp.SP_MediaSkipForward, "Next key frame (PgDown)")
        self.slider = KeyTickSlider()
        self.frame_box = FocusSpinBox()
        self.frame_box.setKeyboardTracking(False)  # jump on Enter, not on every digit
        self.frame_box.setToolTip("Frame number: type one and press Enter")
        self.time_label = QLabel("0:00.00 / 0:00.00")
        self.time_label.setFixedWidth(self.time_label.fontMetrics().horizontalAdvance("00:00.00 / 00:00.00 "))
        lay = QHBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        for w in (self.play, self.prev_key, self.prev, self.next, self.next_key):
            lay.addWidget(w)
        lay.addWidget(self.slider, 1)
        lay.addWidget(QLabel("frame"))
        lay.addWidget(self.frame_box)
        lay.addWidget(self.time_label)
        self.play.toggled.connect(self._on_play)
        self.slider.valueChanged.connect(self.frameRequested)
        self.frame_box.valueChanged.connect(self.frameRequested)
        self.prev.clicked.connect(lambda: self.stepRequested.emit(-1))
        self.next.clicked.connect(lambda: self.stepRequested.emit(1))
        self.prev_key.clicked.connect(lambda: self.keyJumpRequested.emit(-1))
        self.next_key.clicked.connect(lambda: self.keyJumpRequested.emit(1))
        self.set_count(0, 30.0)

    @property
    def frame_count(self) -> int:
        return self.slider.maximum() + 1

    def set_count(self, n: int, fps: float) -> None:
        """A new video of ``n`` frames at ``fps``; position 0."""
        self.fps = float(fps)
        for w in (self.slider, self.frame_box):
            with QSignalBlocker(w):
                w.setRange(0, max(int(n) - 1, 0))
                w.setValue(0)
        self.slider.set_keys(())
        self.slider.set_done(())
        self.set_frame(0)

    def set_frame(self, index: int) -> None:
        """Move the controls to ``index`` without emitting ``frameRequested``."""
        for w in (self.slider, self.frame_box):
            with QSignalBlocker(w):
                w.setValue(int(index))
        n = self.frame_count
        self.time_label.setText(f"{format_time(index / self.fps)} / {format_time(n / self.fps)}")

    def set_playing(self, on: bool) -> None:
        with QSignalBlocker(self.play):
            self.play.setChecked(on)
        self._icon(on)

    def _icon(self, playing: bool) -> None:
        sp = QStyle.StandardPixmap
        self.play.setIcon(self.style().standardIcon(sp.SP_MediaPause if playing else sp.SP_MediaPlay))

    def _on_play(self, on: bool) -> None:
        self._icon(on)
        self.playToggled.emit(on)
