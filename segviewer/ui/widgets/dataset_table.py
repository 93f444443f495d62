"""The dataset table: one row per image, columns held as numpy arrays, sorted and filtered there.

Why not ``QSortFilterProxyModel``: it compares rows one Python call at a time (seconds for
100,000 rows). Here a column is one float64 array (NaN = not defined, always sorted last), a sort
is one ``np.argsort`` and a filter one boolean mask, and the model exposes ``view`` (the row
order shown): the view asks ``data()`` only for the rows on screen, so it stays virtual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from segviewer.analysis.dataset_eval import FRACTION_KEYS

__all__ = ["DatasetTableModel", "COLUMN_TITLES", "column_title"]

_Index = QModelIndex | QPersistentModelIndex

#: Header titles of the metric keys (analysis.dataset_eval.ROW_KEYS), others shown as their key.
COLUMN_TITLES = {
    "gt": "GT", "pred": "Pred", "pq": "PQ", "sq": "SQ", "rq": "RQ", "miou": "mIoU", "pixel_acc": "Pix acc",
    "box_ap": "Box AP", "box_ap50": "Box AP50", "mask_ap": "Mask AP", "mask_ap50": "Mask AP50",
    "kp_ap": "KP AP", "kp_ap50": "KP AP50",
    "tp": "TP", "fp": "FP", "fn": "FN", "infer_ms": "ms",
    "mask_cls": "Cls", "mask_loc": "Loc", "mask_both": "Both", "mask_dupe": "Dupe", "mask_bkg": "Bkg",
    "mask_miss": "Miss", "box_cls": "Box Cls", "box_loc": "Box Loc", "box_both": "Box Both",
    "box_dupe": "Box Dupe", "box_bkg": "Box Bkg", "box_miss": "Box Miss",
}
_FRACTIONS = set(FRACTION_KEYS)


def column_title(key: str) -> str:
    """A column's header: ``d_<key>`` (B - A of a comparison) reads "Δ <title>"."""
    if key.startswith("d_"):
        return "Δ " + COLUMN_TITLES.get(key[2:], key[2:])
    return COLUMN_TITLES.get(key, key)


ERROR_FILTERS = ("cls", "loc", "both", "dupe", "bkg", "miss")


class DatasetTableModel(QAbstractTableModel):
    """Rows = images; column 0 the file name, then numeric columns (see the module docstring)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.names: list[str] = []
        self._lower = np.zeros(0, dtype="<U1")
        self.keys: list[str] = []
        self.columns: dict[str, np.ndarray] = {}
        self.class_counts = np.zeros((0, 0), np.int32)
        self.categories: tuple[str, ...] = ()
        self.view = np.zeros(0, np.int64)  # shown rows, in order (indices into names)
        self.sort_key: str | None = None
        self.descending = False
        self._search, self._class, self._error = "", -1, ""

    # ---- data in --------------------------------------------------------------------------------
    def set_dataset(self, names: Sequence[str], gt_counts: np.ndarray, class_counts: np.ndarray,
                    categories: Sequence[str]) -> None:
        self.beginResetModel()
        self.names = list(names)
        self._lower = np.array([n.lower() for n in self.names]) if self.names else np.zeros(0, dtype="<U1")
        self.categories = tuple(categories)
        self.class_counts = np.asarray(class_counts)
        self.keys = ["gt"]
        self.columns = {"gt": np.asarray(gt_counts, np.float64)}
        self.view = np.arange(len(self.names))
        self.sort_key, self._search, self._class, self._error = None, "", -1, ""
        self.endResetModel()

    def set_class_counts(self, class_counts: np.ndarray, categories: Sequence[str]) -> None:
        """Per-image class counts found after opening (a semantic dataset's label PNGs decoded in
        the background): the GT column and the class filter follow them."""
        self.class_counts = np.asarray(class_counts)
        self.categories = tuple(categories)
        self.columns["gt"] = self.class_counts.sum(axis=1).astype(np.float64)
        if self.view.size:
            self.dataChanged.emit(self.index(0, 1), self.index(len(self.view) - 1, 1))
        self._apply()

    def set_metrics(self, rows: Mapping[int, Mapping[str, Any]], keys: Sequence[str]) -> None:
        """Fill metric columns from ``{row: {key: value}}`` (rows absent stay NaN)."""
        n = len(self.names)
        cols = {"gt": self.columns.get("gt", np.zeros(n))}
        present = [k for k in keys if any(k in r for r in rows.values())]
        for k in present:
            a = np.full(n, np.nan)
            for i, r in rows.items():
                v = r.get(k)
                if isinstance(v, (int, float)):
                    a[i] = v
            cols[k] = a
        self.beginResetModel()
        self.keys = ["gt"] + present
        self.columns = cols
        self.endResetModel()
        self._apply()

    def update_row(self, i: int, row: Mapping[str, Any]) -> None:
        """One image's metrics arrived (a run in progress): new columns appear as needed."""
        new = [k for k, v in row.items() if isinstance(v, (int, float)) and k not in self.columns]
        if new:
            self.beginResetModel()
            for k in new:
                self.columns[k] = np.full(len(self.names), np.nan)
                self.keys.append(k)
            self.endResetModel()
        for k, v in row.items():
            if k in self.columns and isinstance(v, (int, float)):
                self.columns[k][i] = v
        pos = np.flatnonzero(self.view == i)
        if pos.size:
            self.dataChanged.emit(self.index(int(pos[0]), 0), self.index(int(pos[0]), len(self.keys)))

    # ---- Qt model -------------------------------------------------------------------------------
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self.view)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else 1 + len(self.keys)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if role != Qt.ItemDataRole.DisplayRole or orientation != Qt.Orientation.Horizontal:
            return None
        if section == 0:
            return "Image"
        return column_title(self.keys[section - 1])

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        i = int(self.view[index.row()])
        c = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if c == 0:
                return self.names[i]
            key = self.keys[c - 1]
            v = self.columns[key][i]
            if np.isnan(v):
                return ""
            base, delta = (key[2:], True) if key.startswith("d_") else (key, False)
            if base in _FRACTIONS:
                return f"{100 * v:+.1f}" if delta else f"{100 * v:.1f}"
            if base == "infer_ms":
                return f"{v:.0f}"
            return f"{int(v):+d}" if delta else f"{int(v)}"
        if role == Qt.ItemDataRole.TextAlignmentRole and c > 0:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return i
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.sort_by(None if column <= 0 else self.keys[column - 1], order == Qt.SortOrder.DescendingOrder)

    # ---- sort and filter ------------------------------------------------------------------------
    def sort_by(self, key: str | None, descending: bool = False) -> None:
        """Sort by a metric key (None: file name); NaN rows last either way."""
        self.sort_key, self.descending = key, descending
        self._apply()

    def set_filter(self, search: str | None = None, class_index: int | None = None,
                   error: str | None = None) -> None:
        """File-name search (case-insensitive substring), a class present in the ground truth
        (-1: any), an error type (``cls``, ``loc``, ... ; "" any) that occurs on the image."""
        if search is not None:
            self._search = search.lower()
        if class_index is not None:
            self._class = class_index
        if error is not None:
            self._error = error
        self._apply()

    def error_column(self, short: str) -> np.ndarray | None:
        for k in (f"mask_{short}", f"box_{short}"):
            if k in self.columns:
                return self.columns[k]
        return None

    def _order(self) -> np.ndarray:
        n = len(self.names)
        if self.sort_key is None or self.sort_key not in self.columns:
            order = np.arange(n)
            if self.sort_key is None and self.names:
                order = np.argsort(self._lower, kind="stable")
            return order[::-1] if self.descending else order
        col = self.columns[self.sort_key]
        key = -col if self.descending else col
        return np.argsort(key, kind="stable")  # NaN sorts last in both directions

    def _apply(self) -> None:
        order = self._order()
        keep = np.ones(len(self.names), bool)
        if self._search:
            keep &= np.char.find(self._lower, self._search) >= 0
        if self._class >= 0 and self._class < self.class_counts.shape[1]:
            keep &= self.class_counts[:, self._class] > 0
        if self._error:
            col = self.error_column(self._error)
            keep &= (col > 0) if col is not None else False
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()  # selections follow their image across a re-sort
        images = [int(self.view[ix.row()]) if 0 <= ix.row() < len(self.view) else -1 for ix in old]
        self.view = order[keep[order]]
        if old:
            where = np.full(len(self.names), -1, np.int64)
            where[self.view] = np.arange(len(self.view))
            self.changePersistentIndexList(old, [
                self.index(int(where[im]), ix.column()) if im >= 0 and where[im] >= 0 else QModelIndex()
                for ix, im in zip(old, images)])
        self.layoutChanged.emit()

    def row_of(self, image: int) -> int:
        """The table row showing dataset image ``image`` (-1 when filtered out)."""
        pos = np.flatnonzero(self.view == image)
        return int(pos[0]) if pos.size else -1

    def value(self, image: int, key: str) -> float:
        col = self.columns.get(key)
        return float(col[image]) if col is not None else float("nan")
