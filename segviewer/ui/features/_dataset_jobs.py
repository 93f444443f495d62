"""Background work of the dataset view: scoring a whole dataset, resumable, off the UI thread.

:class:`DatasetRun` drives :func:`segviewer.analysis.dataset_eval.run_dataset` in a QThread.
Predictions come from a model (through a model host: a child process by default, as the folder
evaluation does), from two models as a panoptic pair (an instance and a semantic model, merged as
``predict --panoptic`` merges them; members already stored are reused), from two stored runs
merged the same way, or from a COCO results JSON (``segviewer predict``'s ``results.json``). Every
image is committed to the :class:`~segviewer.core.result_store.ResultStore` as it is done, so
Stop (or a crash, or a kill) keeps what was scored and the next run starts where this one ended.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

HostFactory = Callable[[], Any]


def results_predictor(index: Any, results_path: Path) -> Callable[[int], tuple[Any, float]]:
    """``predict(i)`` reading image i's records from a COCO results JSON (categories by id,
    as the dataset's ground truth names them)."""
    import json

    from segviewer.core.coco_results import coco_to_detections
    from segviewer.core.errors import BadDatasetError

    data = json.loads(Path(results_path).read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = data.get("annotations", [])
    if not isinstance(data, list):
        raise BadDatasetError(f"{Path(results_path).name} is not a list of COCO result records")
    by_image: dict[int, list[dict[str, Any]]] = {}
    for r in data:
        by_image.setdefault(int(r["image_id"]), []).append(r)
    inst = index._instances  # noqa: SLF001 - the index's own COCO file, for category ids and sizes
    if inst is None:
        raise BadDatasetError("results JSONs need a COCO instances dataset (its image and category ids)")

    with_masks = any("segmentation" in r for r in data)

    def predict(i: int) -> tuple[Any, float]:
        from segviewer.analysis.dataset_eval import with_empty_masks

        iid = int(index.image_ids[i])
        h, w = inst._size(iid)  # noqa: SLF001
        det = coco_to_detections(by_image.get(iid, []), (h, w), inst.categories, inst.category_ids)
        return (with_empty_masks(det) if with_masks else det), float("nan")  # no detections: still scored for masks

    return predict


def model_predictor(index: Any, host: Any, model_id: str | list[str], device: str,
                    weights: Path | None | dict[str, Path], params: Any, store: Any = None,
                    weights_hashes: dict[str, str] | None = None) -> Callable[[int], tuple[Any, float]]:
    """``predict(i)`` running a model on image i through a model host; milliseconds measured
    (inference only: loading the model on the first image is not counted).

    Two model ids (an instance and a semantic model, either order) make a panoptic pair: each
    image's result is ``(Detections, SemanticMap)``, merged when scored. A member's prediction
    already in ``store`` (its own run, keyed by ``weights_hashes[model]``) is reused, not rerun."""
    from segviewer.analysis.evaluation import pick_results
    from segviewer.core.errors import SegviewerError
    from segviewer.core.imageio import read_image
    from segviewer.core.timing import Timings

    ids = [model_id] if isinstance(model_id, str) else list(model_id)
    wmap = weights if isinstance(weights, dict) else {ids[0]: weights}

    def one(mid: str, i: int, image: Any) -> tuple[Any, float]:
        if store is not None and weights_hashes is not None and mid in weights_hashes:
            got = store.get_prediction(store.image_hash(index.paths[i]), mid, weights_hashes[mid])
            if got is not None:
                return got[0], float(got[1]) if got[1] is not None else float("nan")
        t0 = [time.perf_counter()]

        def on_state(state: str) -> None:  # the clock starts once the model is loaded: ms is inference only
            if state == "loaded":
                t0[0] = time.perf_counter()

        out = host.predict(mid, device, wmap.get(mid), image, params, Timings(), on_state)
        return out, 1000 * (time.perf_counter() - t0[0])

    def predict(i: int) -> tuple[Any, float]:
        image = read_image(index.paths[i])
        if len(ids) == 1:
            return one(ids[0], i, image)
        got = {mid: one(mid, i, image) for mid in ids}
        inst, sem = pick_results({m: r for m, (r, _) in got.items()}, ids)
        if inst is None or sem is None:
            raise SegviewerError(f"a panoptic pair needs an instance model (with masks) and a semantic model; "
                                 f"{' and '.join(ids)} gave {', '.join(type(r).__name__ for r, _ in got.values())}")
        return (inst[1], sem[1]), sum(ms for _, ms in got.values())

    return predict


def pair_key(runs: list[tuple[str, str]]) -> tuple[str, str]:
    """The store key of a panoptic pair made of two runs: ``("inst+sem", "wh1+wh2")``."""
    return "+".join(r[0] for r in runs), "+".join(r[1] for r in runs)


def stored_pair_predictor(index: Any, store: Any, run_a: tuple[str, str], run_b: tuple[str, str]
                          ) -> Callable[[int], tuple[Any, float]]:
    """``predict(i)``: the panoptic pair of two stored runs (an instance and a semantic one, either
    order), nothing predicted; an image one of them lacks is an error (run it first)."""
    from segviewer.analysis.evaluation import pick_results
    from segviewer.core.errors import SegviewerError

    def predict(i: int) -> tuple[Any, float]:
        h = store.image_hash(index.paths[i])
        got = {r: store.get_prediction(h, *r) for r in (run_a, run_b)}
        missing = [r[0] for r, g in got.items() if g is None]
        if missing:
            raise SegviewerError(f"{index.paths[i].name} has no stored result of {', '.join(missing)}: "
                                 "run it on the whole dataset first")
        inst, sem = pick_results({r[0]: g[0] for r, g in got.items()}, [run_a[0], run_b[0]])
        if inst is None or sem is None:
            raise SegviewerError(f"{run_a[0]} and {run_b[0]} are not an instance run and a semantic run")
        ms = [g[1] for g in got.values() if g[1] is not None]
        return (inst[1], sem[1]), float(sum(ms)) if ms else float("nan")

    return predict


class DatasetRun(QThread):
    """One resumable scoring run; signals arrive on the UI thread (queued)."""

    rowReady = Signal(int, object)  # dataset image index, row dict
    progress = Signal(int, int)
    finishedRun = Signal(bool)  # True: every image done; False: stopped
    failed = Signal(str)

    def __init__(self, index: Any, store: Any, model_id: str, weights_hash: str,
                 make_predict: Callable[[], tuple[Callable[[int], tuple[Any, float]], Any]],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("segviewer-dataset-run")
        self.index, self.store, self.model_id, self.weights_hash = index, store, model_id, weights_hash
        self._make_predict = make_predict  # -> (predict, closer or None), called in the thread
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:  # noqa: D102 - QThread entry point
        from segviewer.analysis.dataset_eval import run_dataset

        closer = None
        done = [0]
        try:
            predict, closer = self._make_predict()
            todo = list(range(len(self.index)))

            def progress(k: int, total: int, row: Any) -> None:
                done[0] = k
                self.rowReady.emit(todo[k - 1], row)
                self.progress.emit(k, total)

            run_dataset(self.index, predict, self.store, self.model_id, self.weights_hash,
                        should_stop=self._stop.is_set, progress=progress, images=todo)
        except Exception as err:  # noqa: BLE001 - one line for the user
            if not self._stop.is_set():
                from segviewer.ui.model_host import describe_error

                self.failed.emit(describe_error(err, "Dataset run"))
                return
        finally:
            if closer is not None:
                closer()
        self.finishedRun.emit(done[0] == len(self.index))
