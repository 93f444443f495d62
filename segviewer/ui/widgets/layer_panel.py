"""The layer panel: per layer a visibility checkbox and an opacity slider, the score threshold,
and the class filter (classes present with their counts).

The panel only *reports* what the user did (signals); the main window turns that into undo
commands on :class:`~segviewer.ui.display.DisplayState`, and :meth:`LayerPanel.sync` mirrors the
state back into the widgets with their signals blocked, so undo and redo update the panel too.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from segviewer.ui.display import ClassCount, DisplayState, LayerId
from segviewer.ui.widgets.controls import FocusSlider


def _slider(maximum: int = 100) -> QSlider:
    """A slider that takes the wheel only once clicked or tabbed to: the rows scroll, and a wheel
    passing over them must scroll the list, not change the opacity under the pointer."""
    s = FocusSlider(Qt.Orientation.Horizontal)
    s.setRange(0, maximum)
    s.setSingleStep(1)
    s.setPageStep(10)
    return s


class LayerPanel(QWidget):
    visibilityToggled = Signal(object, bool)  # layer id, on
    opacityChanged = Signal(object, float)  # layer id, 0..1
    scoreChanged = Signal(float)
    classToggled = Signal(str, bool)  # class name, shown

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: dict[LayerId, tuple[QCheckBox, QSlider, QLabel]] = {}
        self._row_widgets: list[QWidget] = []
        self._layer_list: list[LayerId] = []
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)

        self._layers_box = QGroupBox("Visible · opacity")
        # The rows scroll: with several models and ground truth there are a dozen of them, and a
        # panel that only grew would push the window taller than the screen.
        rows = QWidget()
        self._grid = QGridLayout(rows)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setColumnStretch(1, 1)
        self._empty = QLabel("No layers yet: run a model.")
        self._empty.setStyleSheet("color: gray")
        self._grid.addWidget(self._empty, 0, 0, 1, 3)
        self._grid.setRowStretch(1000, 1)  # rows stay at the top
        self.rows_scroll = QScrollArea()
        self.rows_scroll.setWidget(rows)
        self.rows_scroll.setWidgetResizable(True)
        self.rows_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.rows_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.rows_scroll.setMinimumHeight(90)
        QVBoxLayout(self._layers_box).addWidget(self.rows_scroll)
        outer.addWidget(self._layers_box, 3)

        score_box = QGroupBox("Score threshold")
        row = QHBoxLayout(score_box)
        self.score = _slider()
        self.score_label = QLabel("0.50")
        self.score_label.setMinimumWidth(34)
        self.score.valueChanged.connect(self._on_score)
        row.addWidget(self.score)
        row.addWidget(self.score_label)
        outer.addWidget(score_box)

        class_box = QGroupBox("Classes")
        cl = QVBoxLayout(class_box)
        self.classes = QListWidget()
        self.classes.setMinimumHeight(90)
        self.classes.itemChanged.connect(self._on_class_item)
        cl.addWidget(self.classes)
        outer.addWidget(class_box, 1)

    # ---- building ---------------------------------------------------------------------------
    def set_layers(self, layers: Sequence[LayerId], titles: dict[LayerId, str], state: DisplayState) -> None:
        """Rebuild the rows (grouped by model) when the set of layers changed, then mirror ``state``."""
        if self._layer_list != list(layers):
            self._layer_list = list(layers)
            for w in self._row_widgets:
                self._grid.removeWidget(w)
                w.deleteLater()
            self._row_widgets.clear()
            self._rows.clear()
            groups: dict[str, list[LayerId]] = {}
            for layer in layers:
                groups.setdefault(layer[0], []).append(layer)
            r = 1
            for model, members in groups.items():
                head = QLabel(model)
                head.setStyleSheet("font-weight: bold; padding-top: 4px;")
                head.setToolTip(model)
                self._grid.addWidget(head, r, 0, 1, 3)
                self._row_widgets.append(head)
                r += 1
                for layer in members:
                    cb = QCheckBox(layer[1])
                    cb.setToolTip(f"Show or hide {titles.get(layer, layer)} (Ctrl+Z undoes)")
                    sl = _slider()
                    sl.setMinimumWidth(90)
                    sl.setToolTip(f"Opacity of {titles.get(layer, layer)}")
                    lab = QLabel()
                    lab.setMinimumWidth(34)
                    cb.toggled.connect(lambda on, lid=layer: self.visibilityToggled.emit(lid, on))
                    sl.valueChanged.connect(lambda v, lid=layer: self.opacityChanged.emit(lid, v / 100.0))
                    self._grid.addWidget(cb, r, 0)
                    self._grid.addWidget(sl, r, 1)
                    self._grid.addWidget(lab, r, 2)
                    self._rows[layer] = (cb, sl, lab)
                    self._row_widgets.extend((cb, sl, lab))
                    r += 1
        self._empty.setVisible(not layers)
        self.sync(state)

    def set_classes(self, counts: Sequence[ClassCount], state: DisplayState) -> None:
        """One group per model (a heading, then its classes): each model's shares of the image add
        up to at most 100%. A class's box hides it in every model's layers."""
        with QSignalBlocker(self.classes):
            self.classes.clear()
            model = None
            for c in counts:
                if c.model != model:
                    model = c.model
                    head = QListWidgetItem(model)
                    head.setFlags(Qt.ItemFlag.ItemIsEnabled)  # a heading: no box, not selectable
                    font = head.font()
                    font.setBold(True)
                    head.setFont(font)
                    head.setToolTip(f"Classes in {model}'s result")
                    self.classes.addItem(head)
                text = f"{c.name}   {c.count}" if not c.unit else f"{c.name}   {100 * c.share:.0f}%"
                item = QListWidgetItem(("    " if model else "") + text)
                item.setData(Qt.ItemDataRole.UserRole, c.name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked if c.name in state.hidden_classes
                                   else Qt.CheckState.Checked)
                self.classes.addItem(item)

    def sync(self, state: DisplayState) -> None:
        """Mirror ``state`` into the widgets without emitting anything."""
        for layer, (cb, sl, lab) in self._rows.items():
            with QSignalBlocker(cb), QSignalBlocker(sl):
                cb.setChecked(state.visible.get(layer, True))
                sl.setValue(round(state.opacity_of(layer) * 100))
            lab.setText(f"{state.opacity_of(layer):.2f}")
            cb.setEnabled(state.overlays_shown)
        with QSignalBlocker(self.score):
            self.score.setValue(round(state.score_threshold * 100))
        self.score_label.setText(f"{state.score_threshold:.2f}")
        with QSignalBlocker(self.classes):
            for i in range(self.classes.count()):
                item = self.classes.item(i)
                name = item.data(Qt.ItemDataRole.UserRole)
                if name is None:
                    continue  # a model's heading
                item.setCheckState(Qt.CheckState.Unchecked if name in state.hidden_classes
                                   else Qt.CheckState.Checked)

    # ---- accessors for tests and menus -------------------------------------------------------
    def checkbox(self, layer: LayerId) -> QCheckBox:
        return self._rows[layer][0]

    def opacity_slider(self, layer: LayerId) -> QSlider:
        return self._rows[layer][1]

    def class_rows(self) -> list[tuple[str, str]]:
        """(model, "class   count") for every class row, in order (tests, screenshots)."""
        rows: list[tuple[str, str]] = []
        model = ""
        for i in range(self.classes.count()):
            item = self.classes.item(i)
            if item.data(Qt.ItemDataRole.UserRole) is None:
                model = item.text()
            else:
                rows.append((model, item.text().strip()))
        return rows

    def class_item(self, name: str) -> QListWidgetItem | None:
        for i in range(self.classes.count()):
            if self.classes.item(i).data(Qt.ItemDataRole.UserRole) == name:
                return self.classes.item(i)
        return None

    def _on_score(self, v: int) -> None:
        self.score_label.setText(f"{v / 100:.2f}")
        self.scoreChanged.emit(v / 100.0)

    def _on_class_item(self, item: QListWidgetItem) -> None:
        self.classToggled.emit(item.data(Qt.ItemDataRole.UserRole),
                               item.checkState() == Qt.CheckState.Checked)
