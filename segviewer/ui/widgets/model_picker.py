"""The model picker: the zoo and the bundled models with their weight state, checkable (several
at once, e.g. an instance model and a semantic model), a device selector and a Run button."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
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

_TASK_ORDER = ("instance", "semantic", "panoptic", "detection", "keypoint", "voting")


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
        self.tree.setHeaderLabels(["Model", "Task", "Weights"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        hdr = self.tree.header()
        hdr.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        hdr.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        hdr.setStretchLastSection(False)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.currentItemChanged.connect(
            lambda cur, _prev: self.currentChanged.emit(cur.data(0, Qt.ItemDataRole.UserRole) if cur else ""))
        lay.addWidget(self.tree, 1)

        row = QHBoxLayout()
        row.addWidget(QLabel("Device"))
        self.device = QComboBox()
        self.device.currentTextChanged.connect(self.deviceChanged)
        row.addWidget(self.device, 1)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Run the checked models on the current image (Ctrl+R)")
        self.run_button.clicked.connect(self.runRequested)
        row.addWidget(self.run_button)
        lay.addLayout(row)
        self._items: dict[str, QTreeWidgetItem] = {}

    def set_cards(self, cards: Sequence[ModelCard], states: dict[str, str], checked: Iterable[str]) -> None:
        """List the models, bundled first, then by task and id."""
        checked = set(checked)
        order = sorted(cards, key=lambda c: (c.weights_source != "bundled",
                                             _TASK_ORDER.index(c.task) if c.task in _TASK_ORDER else 99, c.id))
        with QSignalBlocker(self.tree):
            self.tree.clear()
            self._items.clear()
            for card in order:
                item = QTreeWidgetItem([card.id, card.task, states.get(card.id, "")])
                item.setData(0, Qt.ItemDataRole.UserRole, card.id)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(0, Qt.CheckState.Checked if card.id in checked else Qt.CheckState.Unchecked)
                tip = card.family + (f"\n{card.description}" if card.description else "")
                if card.metrics:
                    tip += "\n" + ", ".join(f"{k} {v:.3g}" for k, v in card.metrics.items())
                item.setToolTip(0, tip)
                self.tree.addTopLevelItem(item)
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
            item.setText(2, state)

    def state(self, model_id: str) -> str:
        item = self._items.get(model_id)
        return "" if item is None else item.text(2)

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
        return item.data(0, Qt.ItemDataRole.UserRole)

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column == 0:
            self.selectionChanged.emit(self.checked())
