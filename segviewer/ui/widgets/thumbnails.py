"""The thumbnail grid beside the dataset table: same rows, same order, a badge of the sorted metric.

Thumbnails are made on a background thread pool only when the grid asks for an item it shows
(virtual: 5,000 images never mean 5,000 decodes), kept in memory (a bounded LRU of QImages) and
on disk (``<cache>/<blake2b of path, size, mtime>.png``, 128 px on the long side), so reopening
a dataset shows them at once. The disk cache is capped (:data:`MAX_CACHE_BYTES` by default):
a cache hit touches its file, and :func:`prune_cache` removes the least recently used files
(oldest mtime first) when a dataset opens and after every :data:`PRUNE_EVERY` new thumbnails,
so browsing many datasets never fills the disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from segviewer.analysis.dataset_eval import FRACTION_KEYS
from segviewer.ui.widgets.dataset_table import DatasetTableModel, column_title

__all__ = ["ThumbnailCache", "ThumbnailModel", "BadgeDelegate", "THUMB", "prune_cache", "MAX_CACHE_BYTES"]

THUMB = 128
MAX_CACHE_BYTES = 256 * 1024 * 1024  # ~8,000 thumbnails of photos; override per ThumbnailCache
PRUNE_EVERY = 500  # new thumbnails between two prunes of the disk cache
_Index = QModelIndex | QPersistentModelIndex


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "segviewer" / "thumbnails"


def make_thumbnail(path: Path, cache_dir: Path) -> np.ndarray:
    """RGB uint8 thumbnail of an image file, read from or written to the disk cache."""
    import cv2

    st = path.stat()
    key = hashlib.blake2b(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode(), digest_size=12).hexdigest()
    cached = cache_dir / f"{key}.png"
    if cached.is_file():
        img = cv2.imread(str(cached), cv2.IMREAD_COLOR)
        if img is not None:
            with contextlib.suppress(OSError):  # used now: the last file pruned (LRU by mtime)
                os.utime(cached)
            return np.ascontiguousarray(img[:, :, ::-1])
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot read {path.name}")
    h, w = img.shape[:2]
    s = THUMB / max(h, w)
    if s < 1:
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp.png")
        cv2.imwrite(str(tmp), img)
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only cache only costs speed
    return np.ascontiguousarray(img[:, :, ::-1])


def prune_cache(cache_dir: Path, max_bytes: int = MAX_CACHE_BYTES) -> tuple[int, int]:
    """Delete the least recently used thumbnails (oldest mtime first) until ``cache_dir`` holds at
    most ``max_bytes`` of them; returns ``(files removed, bytes left)``. Safe beside a writer:
    a file that vanished or cannot be removed is skipped."""
    files = []
    try:
        entries = list(os.scandir(cache_dir))
    except OSError:
        return 0, 0
    for e in entries:
        if e.name.endswith(".png"):
            with contextlib.suppress(OSError):
                st = e.stat()
                files.append((st.st_mtime_ns, st.st_size, e.path))
    total = sum(f[1] for f in files)
    removed = 0
    for _mtime, size, path in sorted(files):
        if total <= max_bytes:
            break
        try:
            os.remove(path)
        except OSError:
            continue
        total -= size
        removed += 1
    return removed, total


class _Prune(QRunnable):
    def __init__(self, cache_dir: Path, max_bytes: int) -> None:
        super().__init__()
        self.cache_dir, self.max_bytes = cache_dir, max_bytes

    def run(self) -> None:  # noqa: D102 - QRunnable entry point
        prune_cache(self.cache_dir, self.max_bytes)


class _Signals(QObject):
    ready = Signal(int, object)  # image index, RGB array (or None when unreadable)


class _Task(QRunnable):
    def __init__(self, i: int, path: Path, cache_dir: Path, signals: _Signals) -> None:
        super().__init__()
        self.i, self.path, self.cache_dir, self.signals = i, path, cache_dir, signals

    def run(self) -> None:  # noqa: D102 - QRunnable entry point
        try:
            arr = make_thumbnail(self.path, self.cache_dir)
        except Exception:  # noqa: BLE001 - an unreadable image shows as a grey tile
            arr = None
        with contextlib.suppress(RuntimeError):  # the cache went away with its window
            self.signals.ready.emit(self.i, arr)


class ThumbnailCache(QObject):
    """Thumbnails by dataset image index: ``get(i)`` returns one or starts making it."""

    changed = Signal(int)

    def __init__(self, cache_dir: Path | None = None, max_items: int = 2000, parent: QObject | None = None,
                 max_bytes: int = MAX_CACHE_BYTES) -> None:
        super().__init__(parent)
        self.cache_dir = cache_dir or default_cache_dir()
        self.max_bytes = max_bytes  # of the disk cache (pruned LRU by mtime)
        self.paths: list[Path] = []
        self.max_items = max_items
        self._mem: OrderedDict[int, QImage | None] = OrderedDict()
        self._pending: set[int] = set()
        self._gen = 0
        self._signals = _Signals(self)
        self._signals.ready.connect(self._on_ready)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self.made = 0
        self._since_prune = 0

    def set_paths(self, paths: list[Path]) -> None:
        self.pool.clear()
        self._gen += 1
        self.paths = list(paths)
        self._mem.clear()
        self._pending.clear()
        self.prune()

    def prune(self) -> None:
        """Cap the disk cache in the background (see :func:`prune_cache`)."""
        self._since_prune = 0
        self.pool.start(_Prune(self.cache_dir, self.max_bytes))

    def get(self, i: int) -> QImage | None:
        if i in self._mem:
            self._mem.move_to_end(i)
            return self._mem[i]
        if i not in self._pending and 0 <= i < len(self.paths):
            self._pending.add(i)
            self.pool.start(_Task(i + self._gen * 10**9, self.paths[i], self.cache_dir, self._signals))
        return None

    def _on_ready(self, tagged: int, arr: Any) -> None:
        gen, i = divmod(tagged, 10**9)
        if gen != self._gen:
            return
        self._pending.discard(i)
        img = None
        if arr is not None:
            h, w = arr.shape[:2]
            img = QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self._mem[i] = img
        self.made += 1
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self.prune()
        while len(self._mem) > self.max_items:
            self._mem.popitem(last=False)
        self.changed.emit(i)

    def wait(self, ms: int = 30000) -> bool:
        return self.pool.waitForDone(ms)


class ThumbnailModel(QAbstractListModel):
    """The table's rows (same ``view`` order) as grid items: thumbnail + badge text."""

    def __init__(self, table: DatasetTableModel, cache: ThumbnailCache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.table, self.cache = table, cache
        table.modelReset.connect(self._reset)
        table.layoutChanged.connect(self._reset)
        cache.changed.connect(self._on_thumb)

    def _reset(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self.table.view)

    def badge(self, image: int) -> str:
        key = self.table.sort_key
        if key is None:
            return ""
        v = self.table.value(image, key)
        if np.isnan(v):
            return "–"
        base = key[2:] if key.startswith("d_") else key
        frac = base in FRACTION_KEYS
        sign = "+" if key.startswith("d_") else ""
        return f"{column_title(key)} {100 * v:{sign}.0f}" if frac else f"{column_title(key)} {v:{sign}g}"

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        i = int(self.table.view[index.row()])
        if role == Qt.ItemDataRole.DecorationRole:
            return self.cache.get(i)
        if role == Qt.ItemDataRole.DisplayRole:
            return self.table.names[i]
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{self.table.names[i]}  {self.badge(i)}"
        if role == Qt.ItemDataRole.UserRole:
            return i
        if role == Qt.ItemDataRole.UserRole + 1:
            return self.badge(i)
        return None

    def _on_thumb(self, i: int) -> None:
        row = self.table.row_of(i)
        if row >= 0:
            ix = self.index(row, 0)
            self.dataChanged.emit(ix, ix, [Qt.ItemDataRole.DecorationRole])


class BadgeDelegate(QStyledItemDelegate):
    """A tile: the thumbnail, the file name under it, the badge in its top-left corner."""

    def sizeHint(self, option: QStyleOptionViewItem, index: _Index) -> QSize:  # noqa: N802 - Qt API
        return QSize(THUMB + 8, THUMB + 24)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        r = option.rect
        painter.save()
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(r, option.palette.highlight())
        img = index.data(Qt.ItemDataRole.DecorationRole)
        box = QRect(r.x() + 4, r.y() + 4, THUMB, THUMB)
        if isinstance(img, QImage) and not img.isNull():
            sz = img.size().scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(box.x() + (THUMB - sz.width()) // 2, box.y() + (THUMB - sz.height()) // 2,
                           sz.width(), sz.height())
            painter.drawImage(target, img)
        else:
            painter.fillRect(box, QColor(60, 60, 60))
        badge = index.data(Qt.ItemDataRole.UserRole + 1)
        if badge:
            fm = painter.fontMetrics()
            bw = fm.horizontalAdvance(badge) + 8
            painter.fillRect(QRect(box.x(), box.y(), bw, fm.height() + 2), QColor(0, 0, 0, 170))
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(QRect(box.x() + 4, box.y() + 1, bw, fm.height()), 0, badge)
        painter.setPen(option.palette.text().color())
        name = painter.fontMetrics().elidedText(str(index.data()), Qt.TextElideMode.ElideMiddle, THUMB)
        painter.drawText(QRect(r.x() + 4, box.bottom() + 2, THUMB, 18), int(Qt.AlignmentFlag.AlignHCenter), name)
        painter.restore()
