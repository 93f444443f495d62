"""The folder evaluation: every image of the folder through the selected models, in a thread.

The networks run in a :class:`~segviewer.ui.model_host.ProcessHost` by default (its own child
process, reniced), so neither the GIL nor the CPU of the window is taken from the user; the
thread itself only decodes, waits on the pipe and counts. Cancel sets a flag checked between
images and closes the host, which ends a forward pass in flight at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from segviewer.adapters.base import PredictParams
from segviewer.analysis.evaluation import (
    FolderAccumulator,
    ImageEval,
    MergeParams,
    image_report,
    pick_keypoints,
    pick_results,
)
from segviewer.core.timing import Timings
from segviewer.ui.model_host import describe_error

HostFactory = Callable[[], Any]  # -> ModelHost | ProcessHost


class Cancelled(Exception):
    """The user cancelled the folder evaluation."""


class FolderEvaluation(QThread):
    """Runs in its own thread; signals arrive on the UI thread (queued)."""

    progress = Signal(int, int, str)  # done, total, message
    succeeded = Signal(object)  # the report dict
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, paths: Sequence[Path], models: Sequence[str], device: str,
                 weights: dict[str, Path], params: dict[str, PredictParams], merge: MergeParams,
                 host_factory: HostFactory, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("segviewer-folder-eval")
        self.paths = [Path(p) for p in paths]
        self.models = list(models)
        self.device, self.weights, self.params, self.merge = device, dict(weights), params, merge
        self._host_factory = host_factory
        self._host: Any = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()

    def cancel(self) -> None:
        """Stop after (or, with a process host, during) the image being processed."""
        self._cancel.set()
        with self._lock:
            host = self._host
        if host is not None:
            host.close(0.5)

    @property
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:  # noqa: D102 - QThread entry point
        try:
            with self._lock:
                self._host = self._host_factory()
            report = FolderAccumulator().run(self._items())
        except Cancelled:
            self.cancelled.emit()
            return
        except Exception as err:  # noqa: BLE001 - one line for the user, never a crash
            if self._cancel.is_set():
                self.cancelled.emit()
            else:
                self.failed.emit(describe_error(err, "Folder evaluation"))
            return
        finally:
            with self._lock:
                host, self._host = self._host, None
            if host is not None:
                host.close(0.5)
        if self._cancel.is_set():
            self.cancelled.emit()
            return
        report["models"] = list(self.models)
        report["merge"] = {"method": self.merge.method, "overlap": self.merge.overlap,
                           "stuff_min_area": self.merge.stuff_min_area, "min_score": self.merge.min_score}
        report["folder"] = str(self.paths[0].parent) if self.paths else ""
        self.succeeded.emit(report)

    def _items(self) -> Iterator[ImageEval | str]:
        from segviewer.core.groundtruth import find_ground_truth
        from segviewer.core.imageio import read_image

        total = len(self.paths)
        for k, path in enumerate(self.paths):
            if self._cancel.is_set():
                raise Cancelled
            image = read_image(path)
            gt = find_ground_truth(path, image_size=image.shape[:2])
            if not gt:
                self.progress.emit(k + 1, total, f"{path.name}: no ground truth, skipped")
                yield path.name
                continue
            results = {}
            for mid in self.models:
                if self._cancel.is_set():
                    raise Cancelled
                results[mid] = self._host.predict(mid, self.device, self.weights.get(mid), image, self.params[mid],
                                                  Timings(), lambda _s: None)
            inst, sem = pick_results(results, self.models)
            kp = pick_keypoints(results, self.models)
            ev = image_report(None if inst is None else inst[1], None if sem is None else sem[1], gt,
                              self.merge, path.name, want_ap=False, want_errors=False,
                              keypoints=None if kp is None else kp[1])
            self.progress.emit(k + 1, total, f"{path.name} done")
            yield ev
