"""The Internals dock's queries tab (DETR, RT-DETR, Mask2Former, OneFormer): plain widgets with signals.

A query picker, the attention head, toggles for the attention map and for every query's box or
mask before the selection, the picked query's class distribution as a bar list ("no object"
included where the model has it), and the panoptic merge as a step with the model's merge beside
our heuristic and UPSNet merges. The view module (``ui/features/_internals_queries.py``) fills it.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from segviewer.ui.widgets.controls import FocusComboBox
from segviewer.ui.widgets.internals_tabs import SmallHeatmap, text_label

__all__ = ["BarList", "QueriesTab", "MERGE_TITLES"]

#: the merges shown side by side: key -> title
MERGE_TITLES = (("model", "model's merge"), ("heuristic", "heuristic"), ("upsnet", "UPSNet"))


class BarList(QWidget):
    """Horizontal bars, one row per ``(name, value in [0, 1], highlighted)``: a class distribution."""

    ROW = 16

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[tuple[str, float, bool]] = []
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def set_rows(self, rows: list[tuple[str, float, bool]]) -> None:
        self.rows = [(str(n), float(v), bool(h)) for n, v, h in rows]
        self.setFixedHeight(max(1, len(self.rows)) * self.ROW + 4)
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(240, max(1, len(self.rows)) * self.ROW + 4)

    def paintEvent(self, _ev: object) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        w = self.width()
        name_w, num_w = int(w * 0.42), 44
        bar_w = max(w - name_w - num_w - 8, 10)
        fm = p.fontMetrics()
        text = self.palette().color(QPalette.ColorRole.WindowText)
        for i, (name, v, hi) in enumerate(self.rows):
            y = 2 + i * self.ROW
            p.setPen(text if not hi else QColor(200, 120, 0))
            p.drawText(QRectF(0, y, name_w - 4, self.ROW), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                       fm.elidedText(name, Qt.TextElideMode.ElideRight, name_w - 4))
            colour = QColor(150, 150, 150) if name == "no object" else QColor(70, 150, 230)
            if hi:
                colour = QColor(255, 200, 0)
            p.fillRect(QRectF(name_w, y + 3, bar_w * min(max(v, 0.0), 1.0), self.ROW - 6), colour)
            p.setPen(QColor(160, 160, 160))
            p.drawRect(QRectF(name_w, y + 3, bar_w, self.ROW - 6))
            p.setPen(text)
            p.drawText(QRectF(name_w + bar_w + 4, y, num_w, self.ROW), Qt.AlignmentFlag.AlignVCenter, f"{v:.3f}")
        p.end()


class QueriesTab(QWidget):
    """Set prediction: one query's attention and classes, all queries before the selection, the merge."""

    changed = Signal()  # head or a toggle: a redraw
    queryPicked = Signal(int)  # the picker chose a query
    mergesReady = Signal()  # the background comparison of the panoptic merges arrived

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.query = FocusComboBox()
        self.head = FocusComboBox()
        self.show_attention = QCheckBox("attention map (last decoder layer)")
        self.show_attention.setChecked(True)
        self.show_all = QCheckBox("all queries (before the selection)")
        self.show_all.setToolTip("Every query's box or mask, coloured by its fate: kept (green), below the score "
                                 "threshold (red, dashed), lost to overlapping queries (orange), "
                                 "no object (grey, dashed).")
        form = QFormLayout()
        form.addRow("Query", self.query)
        form.addRow("Heads", self.head)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.show_attention)
        lay.addWidget(self.show_all)
        self.counts = text_label("")
        self.info = text_label("Click a detection or a segment on the image, or pick a query.")
        self.bars = BarList()
        lay.addWidget(self.counts)
        lay.addWidget(self.info)
        lay.addWidget(QLabel("<b>Class distribution</b> of the query"))
        lay.addWidget(self.bars)
        self.merge_title = QLabel("<b>Panoptic merge</b> (queries → segments)")
        self.merge_info = text_label("")
        self.merge_maps: dict[str, SmallHeatmap] = {}
        self.merge_labels: dict[str, QLabel] = {}
        maps = QHBoxLayout()
        for key, title in MERGE_TITLES:
            col = QVBoxLayout()
            lab = text_label(title)
            heat = SmallHeatmap(title)
            heat.setMinimumSize(70, 60)
            heat.setFixedHeight(96)  # a thumbnail, not a tall column in the scrolling dock
            col.addWidget(lab)
            col.addWidget(heat)
            maps.addLayout(col)
            self.merge_maps[key], self.merge_labels[key] = heat, lab
        lay.addWidget(self.merge_title)
        lay.addWidget(self.merge_info)
        lay.addLayout(maps)
        lay.addStretch(1)
        self.set_merge_visible(False)
        for combo in (self.query, self.head):  # never wider than the dock
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
        self.head.currentIndexChanged.connect(lambda *_: self.changed.emit())
        self.show_attention.toggled.connect(lambda *_: self.changed.emit())
        self.show_all.toggled.connect(lambda *_: self.changed.emit())
        self.query.activated.connect(lambda i: self.queryPicked.emit(int(self.query.itemData(i))))

    def set_merge_visible(self, on: bool) -> None:
        for w in (self.merge_title, self.merge_info, *self.merge_maps.values(), *self.merge_labels.values()):
            w.setVisible(on)

    def head_index(self) -> int | None:
        """The picked head, or None for the heads' mean."""
        data = self.head.currentData()
        return None if data is None or int(data) < 0 else int(data)

    def set_query(self, q: int) -> None:
        """Show query ``q`` in the picker (no signal)."""
        i = self.query.findData(int(q))
        self.query.blockSignals(True)
        self.query.setCurrentIndex(max(i, 0))
        self.query.blockSignals(False)
