"""A least-recently-used cache bounded by bytes, not by entry count.

Decoded frames, results and rendered layers differ in size by orders of magnitude (a 12000x9000
image against a list of boxes), so counting entries says nothing about memory. Every entry
carries its size; the least recently used entries leave first until the total fits. One lock
guards the whole structure, so the UI thread and the inference worker can share a cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Any

__all__ = ["ByteLRU", "size_of"]


def size_of(value: Any) -> int:
    """Bytes held by ``value``: its ``nbytes()`` method (result types) or ``nbytes`` attribute (arrays)."""
    nb = getattr(value, "nbytes", None)
    if nb is None:
        raise TypeError(f"cannot tell the size of a {type(value).__name__}; pass nbytes= explicitly")
    return int(nb() if callable(nb) else nb)


class ByteLRU:
    """``max_bytes``-bounded LRU mapping. ``get`` and ``put`` both count as a use.

    An entry larger than ``max_bytes`` is not stored (and removes any older value under its key),
    so one huge frame cannot flush everything else.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value under ``key`` (now the most recently used), or ``default``."""
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return default
            self._data.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: Any, nbytes: int | None = None) -> None:
        """Store ``value``; evict least recently used entries until the total fits."""
        size = size_of(value) if nbytes is None else int(nbytes)
        if size < 0:
            raise ValueError(f"nbytes must be >= 0, got {size}")
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._total -= old[1]
            if size > self.max_bytes:
                return
            self._data[key] = (value, size)
            self._total += size
            while self._total > self.max_bytes:
                _, (_, s) = self._data.popitem(last=False)
                self._total -= s

    def pop(self, key: Hashable, default: Any = None) -> Any:
        """Remove and return the value under ``key``, or ``default``."""
        with self._lock:
            item = self._data.pop(key, None)
            if item is None:
                return default
            self._total -= item[1]
            return item[0]

    def __contains__(self, key: object) -> bool:
        """Membership test; does not count as a use."""
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    @property
    def total_bytes(self) -> int:
        """Sum of the sizes of the stored entries."""
        with self._lock:
            return self._total

    def keys(self) -> list[Hashable]:
        """Keys from least to most recently used (a snapshot)."""
        with self._lock:
            return list(self._data)

    def __iter__(self) -> Iterator[Hashable]:
        """Iterate over a snapshot of the keys, least recently used first."""
        return iter(self.keys())

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._total = 0

    def __repr__(self) -> str:
        return f"ByteLRU({len(self)} entries, {self.total_bytes}/{self.max_bytes} bytes)"
