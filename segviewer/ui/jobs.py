"""One-off background jobs (exports): file writing never runs on the UI thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from segviewer.ui.worker import describe_error


class JobSignals(QObject):
    done = Signal(object)
    failed = Signal(str)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], signals: JobSignals, name: str) -> None:
        super().__init__()
        self._fn, self._signals, self._name = fn, signals, name
        self.setAutoDelete(True)

    def run(self) -> None:  # noqa: D102 - QRunnable entry point
        try:
            value = self._fn()
        except Exception as err:  # noqa: BLE001 - becomes a message, never a crash
            self._emit("failed", describe_error(err, self._name))
        else:
            self._emit("done", value)

    def _emit(self, which: str, value: Any) -> None:
        try:
            getattr(self._signals, which).emit(value)
        except RuntimeError:  # the app quit or the owner died while the job ran: nobody listens
            _alive.discard(self._signals)


_alive: set[JobSignals] = set()


def run_background(fn: Callable[[], Any], on_done: Callable[[Any], None],
                   on_failed: Callable[[str], None], name: str = "Job",
                   owner: QObject | None = None, pool: QThreadPool | None = None) -> JobSignals:
    """Run ``fn`` on the global thread pool (or ``pool``: a long job there leaves the global one's
    few threads to the window's short jobs); the callbacks run on the UI thread.

    With an ``owner`` (the window or panel the callbacks update), the job's signals are its
    child: once the owner is destroyed a late result is dropped instead of reaching dead widgets.
    """
    signals = JobSignals(owner)
    _alive.add(signals)

    def finish(cb: Callable[[Any], None]) -> Callable[[Any], None]:
        def call(value: Any) -> None:
            _alive.discard(signals)
            cb(value)
        return call

    signals.done.connect(finish(on_done))
    signals.failed.connect(finish(on_failed))
    (pool or QThreadPool.globalInstance()).start(_Job(fn, signals, name))
    return signals
