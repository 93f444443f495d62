"""The Video dock's body: timeline, a one-line readout, the DFF and display controls as two tabs,
and the per-frame plot beside them. Plain widgets; :class:`~segviewer.ui.features.video.VideoFeature`
fills and listens to them.

The dock sits under the image, so it is laid out to stay short: the controls are two tabs of a
small grid each (they scroll when the dock is shorter still) beside the plot, instead of two long
rows that set the window's minimum width and a plot that set its minimum height.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from segviewer.ui.settings import get_float
from segviewer.ui.widgets.controls import ElidedLabel, FocusComboBox, FocusDoubleSpinBox, FocusSpinBox
from segviewer.ui.widgets.video_plot import VideoPlot
from segviewer.ui.widgets.video_timeline import Timeline

__all__ = ["VideoControls", "progress_width"]

OPEN_HINT = "Open a video: File > Open Video… (Ctrl+Shift+V)"


def _readout(text: str) -> ElidedLabel:
    """A one-line readout that changes every frame: its width never follows the text, so an update
    does not re-layout the dock (a relayout repaints the window)."""
    lab = ElidedLabel(text)
    lab.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    return lab


def progress_width(bar: QProgressBar, fmt: str, total: int) -> int:
    """Pixels a progress bar needs to show ``fmt`` at its longest (``%v`` = ``%m`` = total) on one
    line, with room for the style's chunk margins."""
    text = fmt.replace("%v", str(total)).replace("%m", str(total)).replace("%p", "100")
    return bar.fontMetrics().horizontalAdvance(text) + 4 * bar.fontMetrics().averageCharWidth()


def _page(grid: QGridLayout) -> QScrollArea:
    body = QWidget()
    body.setLayout(grid)
    grid.setContentsMargins(6, 4, 6, 4)
    grid.setVerticalSpacing(4)
    grid.setRowStretch(grid.rowCount(), 1)
    area = QScrollArea()
    area.setWidget(body)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # the tabs take the width
    return area


class VideoControls(QWidget):
    """Every widget of the Video dock, laid out; no behaviour (the feature connects them)."""

    def __init__(self, models: Sequence[str], instance_models: Sequence[str], max_interval: int,
                 wheel: QPixmap | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._restoring = False
        self.timeline = Timeline()
        self.readout = _readout(OPEN_HINT)
        self.plot = VideoPlot()

        # -- Deep Feature Flow: which model, how often a key frame, instances, the jobs
        self.model_box = FocusComboBox()
        for m in models:
            self.model_box.addItem(m)
        self.model_box.setToolTip("The segmentation model Deep Feature Flow runs on key frames")
        self.instances_box = FocusComboBox()
        self.instances_box.addItem("none", "")
        for m in instance_models:
            self.instances_box.addItem(m, m)
        self.instances_box.setToolTip("An instance model run on every frame; each object keeps its color "
                                      "while it moves (tracked by mask IoU)")
        self.interval = FocusSpinBox()
        self.interval.setRange(1, max_interval)
        self.interval.setValue(10)
        self.interval.setToolTip("Key-frame interval (the adaptive schedule's maximum)")
        self.adaptive = QCheckBox("adaptive")
        self.adaptive.setToolTip("New key frame when the flow or the warp residual grows too large")
        self.reference = QCheckBox("agreement")
        self.reference.setChecked(True)
        self.reference.setToolTip("Also run the whole model on propagated frames and report the mIoU with it")
        self.process_btn = QPushButton("Process all")
        self.process_btn.setToolTip("Run Deep Feature Flow over the whole video; playback then reads the cache")
        self.export_btn = QPushButton("Export…")
        self.export_btn.setToolTip("Export the video with the segmentation blended in (.mp4)")
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.progress.setTextVisible(True)
        self.progress.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setVisible(False)
        dff = QGridLayout()
        dff.addWidget(QLabel("Model"), 0, 0)
        dff.addWidget(self.model_box, 0, 1, 1, 2)
        dff.addWidget(QLabel("Key every"), 1, 0)
        dff.addWidget(self.interval, 1, 1)
        dff.addWidget(self.adaptive, 1, 2)
        dff.addWidget(QLabel("Instances"), 2, 0)
        dff.addWidget(self.instances_box, 2, 1)
        dff.addWidget(self.reference, 2, 2)
        jobs = QHBoxLayout()
        jobs.addWidget(self.process_btn)
        jobs.addWidget(self.export_btn)
        jobs.addStretch(1)
        dff.addLayout(jobs, 3, 0, 1, 3)
        running = QHBoxLayout()
        running.addWidget(self.progress, 1)
        running.addWidget(self.cancel_btn)
        dff.addLayout(running, 4, 0, 1, 3)
        dff.setColumnStretch(1, 1)

        # -- what is drawn on the frame
        self.show_seg = QCheckBox("segmentation")
        self.show_seg.setChecked(True)
        self.show_color = QCheckBox("flow colour")
        self.show_arrows = QCheckBox("arrows")
        self.show_mag = QCheckBox("magnitude")
        self.arrow_step = FocusSpinBox()
        self.arrow_step.setRange(4, 64)
        self.arrow_step.setValue(16)
        self.arrow_step.setSuffix(" px")
        self.arrow_step.setToolTip("Arrow spacing in pixels (density)")
        self.arrow_scale = FocusDoubleSpinBox()
        self.arrow_scale.setRange(0.1, 20.0)
        self.arrow_scale.setValue(1.0)
        self.arrow_scale.setPrefix("× ")
        self.arrow_scale.setToolTip("Arrow length scale")
        self.rim = FocusDoubleSpinBox()
        self.rim.setRange(0.0, 500.0)
        self.rim.setSpecialValueText("video max")
        self.rim.setToolTip("Flow magnitude at the colour wheel's rim (px); 'video max' = the largest seen so far")
        self.legend = QLabel()  # the flow colour wheel
        if wheel is not None:
            self.legend.setPixmap(wheel)
        self.legend_text = QLabel("rim: –")
        self.hover_label = _readout("")
        disp = QGridLayout()
        disp.addWidget(self.show_seg, 0, 0)
        disp.addWidget(self.show_color, 0, 1)
        disp.addWidget(self.show_arrows, 1, 0)
        disp.addWidget(self.show_mag, 1, 1)
        disp.addWidget(QLabel("Arrows"), 2, 0)
        arrows = QHBoxLayout()
        arrows.addWidget(self.arrow_step)
        arrows.addWidget(self.arrow_scale)
        disp.addLayout(arrows, 2, 1)
        disp.addWidget(QLabel("Wheel rim"), 3, 0)
        rim = QHBoxLayout()
        rim.addWidget(self.rim)
        rim.addWidget(self.legend)
        rim.addStretch(1)
        disp.addLayout(rim, 3, 1)
        disp.addWidget(self.legend_text, 4, 0)
        disp.addWidget(self.hover_label, 4, 1)
        disp.setColumnStretch(1, 1)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        pages = (_page(dff), _page(disp))
        self.tabs.addTab(pages[0], "Deep Feature Flow")
        self.tabs.addTab(pages[1], "Display")
        # wide enough for either page's controls (they scroll vertically only), and no wider
        bar = self.style().pixelMetric(self.style().PixelMetric.PM_ScrollBarExtent)
        self.tabs.setFixedWidth(max(pg.widget().minimumSizeHint().width() for pg in pages) + bar + 4)
        self.tabs.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.tabs, 0)
        body.addWidget(self.plot, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.setSpacing(2)
        lay.addWidget(self.timeline)
        lay.addWidget(self.readout)
        lay.addLayout(body, 1)

    def restore(self, st: QSettings) -> None:
        """The last model, interval, schedule and instance model (``video/*`` in the settings)."""
        self._restoring = True  # each widget's change signal would save the others' defaults
        try:
            for key, box in (("video/model", self.model_box), ("video/instances", self.instances_box)):
                v = str(st.value(key, ""))
                i = box.findData(v) if box is self.instances_box else box.findText(v)
                if st.contains(key) and i >= 0:
                    box.setCurrentIndex(i)
            self.interval.setValue(int(get_float(st, "video/interval", self.interval.value())))
            self.adaptive.setChecked(str(st.value("video/adaptive", "false")).lower() == "true")
            self.reference.setChecked(str(st.value("video/agreement", "true")).lower() == "true")
        finally:
            self._restoring = False

    def save(self, st: QSettings) -> None:
        """Remember the DFF choices (not while :meth:`restore` sets them one by one)."""
        if self._restoring:
            return
        st.setValue("video/model", self.model_box.currentText())
        st.setValue("video/instances", str(self.instances_box.currentData() or ""))
        st.setValue("video/interval", int(self.interval.value()))
        st.setValue("video/adaptive", "true" if self.adaptive.isChecked() else "false")
        st.setValue("video/agreement", "true" if self.reference.isChecked() else "false")

    def set_job(self, on: bool, fmt: str = "", total: int = 1) -> None:
        """Show a job's progress bar (wide enough for ``fmt`` at ``total``) and Cancel, and lock the
        controls that would change what the job computes."""
        self.progress.setVisible(on)
        self.cancel_btn.setVisible(on)
        self.process_btn.setEnabled(not on)
        self.export_btn.setEnabled(not on)
        for wd in (self.interval, self.adaptive, self.reference, self.model_box, self.instances_box):
            wd.setEnabled(not on)
        if on:
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(0)
            self.progress.setFormat(fmt)
            self.progress.setMinimumWidth(progress_width(self.progress, fmt, max(total, 1)))

    def reset(self) -> None:
        """No video: empty timeline, plot and readout (nothing from the last video stays)."""
        self.timeline.set_count(0, self.timeline.fps)
        self.plot.set_frames(0)
        self.plot.set_readouts([])
        self.plot.set_current(0)
        self.readout.setText(OPEN_HINT)
        self.hover_label.setText("")
        self.legend_text.setText("rim: –")
        self.set_job(False)
