"""The Qt binding we run on must not lose references to ``True``/``False``.

PySide6 6.12.0 drops one reference to ``True`` on every ``Signal.emit(True)``; on Python 3.11
(where bools are ordinary objects) a long session, or this test suite, then aborts in
``bool_dealloc`` at exit. ``pyproject.toml`` excludes that release; this test catches the next one.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    flag = Signal(bool)
    value = Signal(object)


def test_emitting_bools_keeps_their_reference_counts(qtbot) -> None:
    e = _Emitter()
    got: list[bool] = []
    e.flag.connect(got.append)
    e.value.connect(got.append)
    before = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(500):
        e.flag.emit(True)
        e.value.emit(False)
    got.clear()
    after = sys.getrefcount(True), sys.getrefcount(False)
    assert after[0] - before[0] > -100 and after[1] - before[1] > -100, (before, after)
