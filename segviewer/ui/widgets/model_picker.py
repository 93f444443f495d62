"""The model picker: the zoo and the bundled models with their weight state, checkable (several
at once, e.g. an instance model and a semantic model), a device selector and a Run button."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segviewer.adapters.base import ModelCard
from segviewer.ui.widgets.controls import FocusComboBox

_TASK_ORDER = ("instance", "semantic", "panoptic", "detection", "keypoint", "voting")
_TASK_TITLES = {"instance": "Instance segmentation", "semantic": "Semantic segmentation",
                "panoptic": "Panoptic segmentation", "detection": "Detection", "keypoint": "Keypoints",
                "voting": "Pixel consensus voting"}


class ModelPicker(QWidget):
    selectionChanged = Signal(list)  # checked model ids, in list order
    runRequested = Signal()
    deviceChanged = Signal(str)
    currentChanged = Signal(str)  # the highlighted model (File > Load weights acts on it)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Model", "Weights"])
        self.tree.setRootIsDecorated(False)
        self.tree.setIndentation(8)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        hdr = self.tree.header()
        hdr.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        hdr.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        hdr.setStretchLastSection(False)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.currentItemChanged.connect(
            lambda cur, _prev: self.currentChanged.emit((cur.data(0, Qt.ItemDataRole.UserRole) or "") if cur else ""))
        lay.addWidget(self.tree, 1)

        row = QHBoxLayout()
        row.addWidget(QLabel("Device"))
        self.device = FocusComboBox()  # a stray wheel must not switch the device
        self.device.currentTextChanged.connect(self.deviceChanged)
        row.addWidget(self.device, 1)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Run the checked models on the current image (Ctrl+R)")
        self.run_button.clicked.connect(self.runRequested)
        row.addWidget(self.run_button)
        lay.addLayout(row)
        self._items: dict[str, QTreeWidgetItem] = {}

    def set_cards(self, cards: Sequence[ModelCard], states: dict[str, str], checked: Iterable[str]) -> None:
        """List the models under one heading per task; bundled models first within a task."""
        checked = set(checked)
        order = sorted(cards, key=lambda c: (_TASK_ORDER.index(c.task) if c.task in _TASK_ORDER else 99,
                                             c.weights_source != "bundled", c.id))
        with QSignalBlocker(self.tree):
            self.tree.clear()
            self._items.clear()
            groups: dict[str, QTreeWidgetItem] = {}
            for card in order:
                group = groups.get(card.task)
                if group is None:
                    group = QTreeWidgetItem([_TASK_TITLES.get(card.task, card.task.title()), ""])
                    group.setFlags(Qt.ItemFlag.ItemIsEnabled)
                    font = group.font(0)
                    font.setBold(True)
                    group.setFont(0, font)
                    self.tree.addTopLevelItem(group)
                    group.setExpanded(True)
                    groups[card.task] = group
                item = QTreeWidgetItem([card.id, states.get(card.id, "")])
                item.setData(0, Qt.ItemDataRole.UserRole, card.id)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(0, Qt.CheckState.Checked if card.id in checked else Qt.CheckState.Unchecked)
                tip = f"{card.id}: {card.family}" + (f"\n{card.description}" if card.description else "")
                if card.metrics:
                    tip += "\n" + ", ".join(f"{k} {v:.3g}" for k, v in card.metrics.items())
                item.setToolTip(0, tip)
                group.addChild(item)
                self._items[card.id] = item

    def set_devices(self, devices: Sequence[str], current: str) -> None:
        with QSignalBlocker(self.device):
            self.device.clear()
            self.device.addItems(list(devices))
            if current in devices:
                self.device.setCurrentText(current)

    def set_state(self, model_id: str, state: str) -> None:
        item = self._items.get(model_id)
        if item is not None:
            item.setText(1, state)

    def set_failure(self, model_id: str, message: str) -> None:
        """Mark a model that failed on the current image (red, the reason in its tooltip) without
        a dialog; an empty ``message`` clears the mark once it works again."""
        item = self._items.get(model_id)
        if item is None:
            return
        base = item.data(0, Qt.ItemDataRole.UserRole + 1)
        if base is None:
            base = item.toolTip(0)
            item.setData(0, Qt.ItemDataRole.UserRole + 1, base)
        item.setToolTip(0, f"{base}\n\nFailed on this image: {message}" if message else base)
        item.setForeground(0, QBrush(QColor("#d04040")) if message else QBrush())

    def failure_marked(self, model_id: str) -> bool:
        item = self._items.get(model_id)
        return item is not None and item.foreground(0).style() != Qt.BrushStyle.NoBrush

    def state(self, model_id: str) -> str:
        item = self._items.get(model_id)
        return "" if item is None else item.text(1)

    def checked(self) -> list[str]:
        return [mid for mid, it in self._items.items() if it.checkState(0) == Qt.CheckState.Checked]

    def set_checked(self, model_id: str, on: bool) -> None:
        item = self._items.get(model_id)
        if item is not None:
            item.setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def current(self) -> str | None:
        item = self.tree.currentItem()
        if item is None:
            checked = self.checked()
            return checked[0] if checked else None
        return item.data(0, Qt.ItemDataRole.UserRole) or None

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column == 0:
            self.selectionChanged.emit(self.checked())
