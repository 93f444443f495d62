"""Panoptic quality (PQ = SQ x RQ) equal to COCO panoptic's reference ``pq_compute``.

Rules, as panopticapi's ``pq_compute_single_core`` (and cityscapesscripts' copy of it) apply them:

* a predicted and a ground-truth segment match when their categories agree, the ground truth is
  not crowd and IoU > 0.5, the union leaving out the predicted pixels on ground-truth void (id 0);
* unmatched non-crowd ground truth is a false negative; crowd is never a false negative;
* an unmatched prediction is a false positive unless more than half of it lies on void plus its
  category's crowd region (only the LAST crowd segment listed per category counts, a quirk of the
  reference that we keep so the numbers agree);
* per class PQ = sum IoU / (TP + FP/2 + FN/2), SQ = sum IoU / TP (0 without TP), RQ = TP / (...);
  a class with no TP, FP or FN is left out of the means (``n`` counts the classes averaged).
  Where the reference divides by zero (no class counted) we report 0.0 with ``n = 0``.

Deliberate differences, all of them stricter: the reference takes ground-truth areas from the JSON;
we count them in the PNG and raise if the JSON disagrees. It ignores ground-truth ids absent from
``segments_info`` and unknown ground-truth categories; we raise. Errors name the image and segment.

By size (``by_size``): each segment is put in a COCO area range by its own pixel area: small
< 32^2, medium [32^2, 96^2), large >= 96^2. TP and FN are counted in the range of the ground-truth
segment, FP in the range of the predicted one; PQ of a range is then computed as above.

Speed: one ``bincount`` over paired compact ids per image (:mod:`segviewer.analysis.matching`)
instead of ``np.unique`` over 64-bit keys plus Python dictionaries. From files
(:func:`~segviewer.core.panoptic_io.read_panoptic_ids`, zlib-ng inflating): OpenCV's PNGs are read
as runs straight from their "Sub" bytes and counted run by run (:func:`pair_counts_runs`);
adaptive ones such as PIL's are unfiltered by libspng and counted per run of equal pixel pairs;
anything else is decoded by libpng.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.analysis.matching import (
    IdIndexer,
    PairCounts,
    check_listed_ids,
    check_segment_ids,
    index_values,
    match_pairs,
    pair_counts,
)
from segviewer.core.errors import BadDatasetError
from segviewer.core.fileio import read_json_object
from segviewer.core.panoptic_io import IdRuns, keep_freed_memory, read_panoptic_ids, read_panoptic_png
from segviewer.core.results import PanopticMap

__all__ = [
    "SIZE_RANGES",
    "PQAccumulator",
    "pq_compute",
    "pq_from_maps",
    "image_pq",
    "read_panoptic_png",
    "load_panoptic_json",
    "pair_counts_runs",
    "pair_stats",
]

#: COCO area ranges in pixels, half-open [lo, hi).
SIZE_RANGES: dict[str, tuple[float, float]] = {
    "small": (0, 32**2),
    "medium": (32**2, 96**2),
    "large": (96**2, float("inf")),
}
_BUCKETS = ("all", *SIZE_RANGES)


def _bucket_of(area: np.ndarray) -> np.ndarray:
    """Size bucket 1..3 (small, medium, large) of each area."""
    return 1 + (area >= 32**2).astype(np.intp) + (area >= 96**2).astype(np.intp)


class PQAccumulator:
    """Sums TP, FP, FN and matched IoU per category (and per size range) over images.

    ``categories`` are COCO panoptic category dicts: ``{"id", "name", "isthing"}``. Segments given
    to :meth:`add` name categories by that ``id``.
    """

    def __init__(self, categories: Sequence[Mapping[str, Any]]) -> None:
        self.categories = [dict(c) for c in categories]
        self.cat_ids = np.array([int(c["id"]) for c in self.categories], np.int64)
        if len(set(self.cat_ids.tolist())) != len(self.cat_ids):
            raise BadDatasetError("the categories list names a category id twice")
        self._pos = {int(c): i for i, c in enumerate(self.cat_ids)}
        c = len(self.categories)
        self.iou = np.zeros((len(_BUCKETS), c))
        self.counts = np.zeros((len(_BUCKETS), 3, c), np.int64)  # tp, fp, fn
        self.images = 0

    def _cat_pos(self, cats: Sequence[int], where: str, side: str, ids: np.ndarray) -> np.ndarray:
        out = np.empty(len(cats), np.intp)
        for k, c in enumerate(cats):
            p = self._pos.get(int(c))
            if p is None:
                raise BadDatasetError(f"{where}: {side} segment {int(ids[k])} has unknown category_id {c}")
            out[k] = p
        return out

    def image_stats(self, gt_map: np.ndarray | IdRuns, gt_segments: Sequence[Mapping[str, Any]],
                    pred_map: np.ndarray | IdRuns, pred_segments: Sequence[Mapping[str, Any]], *,
                    where: str = "image", indexer: IdIndexer | None = None,
                    check_gt_area: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """One image's ``(iou (B, C), counts (B, 3, C))``; pure, so images can run in threads.
        The maps are ``(H, W)`` id arrays, or both :class:`IdRuns` (counted run by run)."""
        gids = np.array([int(s["id"]) for s in gt_segments], np.int64)
        pids = np.array([int(s["id"]) for s in pred_segments], np.int64)
        if isinstance(gt_map, IdRuns) and isinstance(pred_map, IdRuns):
            pc = pair_counts_runs(gt_map, gids, pred_map, pids, where=where)
        else:
            gm = gt_map.to_map() if isinstance(gt_map, IdRuns) else gt_map
            pm = pred_map.to_map() if isinstance(pred_map, IdRuns) else pred_map
            pc = pair_counts(gm, gids, pm, pids, where=where, indexer=indexer)
        gcat = self._cat_pos([s["category_id"] for s in gt_segments], where, "ground-truth", gids)
        pcat = self._cat_pos([s["category_id"] for s in pred_segments], where, "predicted", pids)
        gcrowd = np.array([int(s.get("iscrowd", 0)) == 1 for s in gt_segments], bool)
        garea, parea = pc.gt_area, pc.pred_area
        if check_gt_area:
            for k, s in enumerate(gt_segments):
                if "area" in s and int(s["area"]) != int(garea[k]):
                    raise BadDatasetError(f"{where}: ground-truth segment {int(gids[k])} has area "
                                          f"{s['area']} in the JSON but {int(garea[k])} pixels in the PNG")
        gi, pj, ious = match_pairs(pc, gcat, gcrowd, pcat)
        c = len(self.categories)
        iou = np.zeros((len(_BUCKETS), c))
        counts = np.zeros((len(_BUCKETS), 3, c), np.int64)
        gb, pb = _bucket_of(garea), _bucket_of(parea)

        def add(stat: int, cat: np.ndarray, bucket: np.ndarray, w: np.ndarray | None = None) -> None:
            np.add.at(counts, (0, stat, cat), 1)
            np.add.at(counts, (bucket, stat, cat), 1)
            if w is not None:
                np.add.at(iou, (0, cat), w)
                np.add.at(iou, (bucket, cat), w)

        add(0, gcat[gi], gb[gi], ious)
        matched_g = np.zeros(len(gids), bool)
        matched_g[gi] = True
        matched_p = np.zeros(len(pids), bool)
        matched_p[pj] = True
        fn = np.flatnonzero(~matched_g & ~gcrowd)
        add(2, gcat[fn], gb[fn])
        # Unmatched predictions more than half on void or on their category's (last) crowd segment
        # are not false positives.
        covered = pc.pred_on_void.astype(np.int64).copy()
        crowd_of_cat = {int(gcat[k]): k for k in np.flatnonzero(gcrowd)}
        for j in np.flatnonzero(~matched_p):
            k = crowd_of_cat.get(int(pcat[j]))
            if k is not None:
                covered[j] += pc.intersections[k, j]
        fp = np.flatnonzero(~matched_p & ~(covered / np.maximum(parea, 1) > 0.5))
        add(1, pcat[fp], pb[fp])
        return iou, counts

    def add_stats(self, iou: np.ndarray, counts: np.ndarray) -> None:
        self.iou += iou
        self.counts += counts
        self.images += 1

    def add(self, gt_map: np.ndarray, gt_segments: Sequence[Mapping[str, Any]], pred_map: np.ndarray,
            pred_segments: Sequence[Mapping[str, Any]], *, where: str = "image",
            indexer: IdIndexer | None = None) -> None:
        """Add one image: two ``(H, W)`` segment id maps and their ``segments_info`` lists."""
        self.add_stats(*self.image_stats(gt_map, gt_segments, pred_map, pred_segments,
                                         where=where, indexer=indexer))

    def _average(self, b: int, isthing: bool | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        pq = sq = rq = 0.0
        n = 0
        per: list[dict[str, Any]] = []
        for k, cat in enumerate(self.categories):
            thing = int(cat.get("isthing", 0)) == 1
            if isthing is not None and thing != isthing:
                continue
            tp, fp, fn = (int(v) for v in self.counts[b, :, k])
            iou = float(self.iou[b, k])
            row: dict[str, Any] = {"id": int(cat["id"]), "name": str(cat.get("name", cat["id"])),
                                   "isthing": thing, "tp": tp, "fp": fp, "fn": fn,
                                   "pq": 0.0, "sq": 0.0, "rq": 0.0}
            if tp + fp + fn:
                n += 1
                den = tp + 0.5 * fp + 0.5 * fn
                row["pq"], row["sq"], row["rq"] = iou / den, (iou / tp if tp else 0.0), tp / den
                pq += row["pq"]
                sq += row["sq"]
                rq += row["rq"]
            per.append(row)
        if n == 0:
            return {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 0}, per
        return {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n}, per

    def results(self) -> dict[str, Any]:
        """``{"all"|"things"|"stuff": {"pq","sq","rq","n"}, "per_class": {name: {...}},
        "by_size": {"small"|"medium"|"large": {"all"|"things"|"stuff": {...}}}, "images": int}``."""
        out: dict[str, Any] = {}
        for name, flag in (("all", None), ("things", True), ("stuff", False)):
            out[name], per = self._average(0, flag)
            if flag is None:
                table: dict[str, Any] = {}
                for row in per:
                    key = row["name"] if row["name"] not in table else f"{row['name']} ({row['id']})"
                    table[key] = row
                out["per_class"] = table
        out["by_size"] = {
            size: {name: self._average(b, flag)[0]
                   for name, flag in (("all", None), ("things", True), ("stuff", False))}
            for b, size in enumerate(_BUCKETS[1:], start=1)
        }
        out["images"] = self.images
        return out


# --------------------------------------------------------------------------------------------
# Files: COCO panoptic JSON + PNG folders


def load_panoptic_json(path: str | Path) -> dict[str, Any]:
    """A COCO panoptic JSON as a dict, with a one-sentence error for unreadable files."""
    p = Path(path)
    data = read_json_object(p, "panoptic JSON")
    if not isinstance(data.get("annotations"), list):
        raise BadDatasetError(f"{p.name} has no 'annotations' list, so it is not COCO panoptic JSON")
    return data


def _image_name(ann: Mapping[str, Any]) -> str:
    return f"image {ann.get('image_id')} ({ann.get('file_name', '?')})"


def pq_compute(gt_json: str | Path | Mapping[str, Any], pred_json: str | Path | Mapping[str, Any],
               gt_folder: str | Path | None = None, pred_folder: str | Path | None = None,
               workers: int | None = None, mapper: Callable[..., Iterable[Any]] | None = None,
               processes: bool = False) -> dict[str, Any]:
    """PQ of a COCO panoptic prediction against ground truth, from files (``pq_compute`` alike).

    ``mapper(fn, [args, ...])``, when given, runs :func:`pair_stats` over the images instead of
    the threads (``eval --engine ray``) and must return the results in the order given.

    Folders default to the JSON's path without suffix (``panoptic.json`` -> ``panoptic/``).
    Categories come from the ground-truth JSON. Images are decoded and counted in ``workers``
    threads (default: one per CPU, at most 8); the numbers do not depend on it (per-image sums
    are added in image order). ``processes`` makes the workers forked processes instead, where
    the platform forks and this process runs no other thread (the command line): decoding and
    counting hold the GIL for part of every image, so threads gain 1.1-1.2x on two cores and
    processes nearly 2x (``bench/pq.py``). A batch job: it asks glibc to keep freed memory
    (:func:`~segviewer.core.panoptic_io.keep_freed_memory`), so the per-image buffers are not
    faulted in again for every image.
    """
    keep_freed_memory()
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    gj = gt_json if isinstance(gt_json, Mapping) else load_panoptic_json(gt_json)
    pj = pred_json if isinstance(pred_json, Mapping) else load_panoptic_json(pred_json)
    if gt_folder is None:
        if isinstance(gt_json, Mapping):
            raise BadDatasetError("give the ground-truth PNG folder when the JSON is passed as a dict")
        gt_folder = Path(gt_json).with_suffix("")
    if pred_folder is None:
        if isinstance(pred_json, Mapping):
            raise BadDatasetError("give the prediction PNG folder when the JSON is passed as a dict")
        pred_folder = Path(pred_json).with_suffix("")
    gt_folder, pred_folder = Path(gt_folder), Path(pred_folder)
    for f, side in ((gt_folder, "ground-truth"), (pred_folder, "prediction")):
        if not f.is_dir():
            raise BadDatasetError(f"the {side} PNG folder {f} does not exist")
    cats = gj.get("categories")
    if not isinstance(cats, list) or not cats:
        raise BadDatasetError("the ground-truth JSON has no 'categories' list")
    acc = PQAccumulator(cats)
    preds = {a.get("image_id"): a for a in pj["annotations"]}
    pairs = []
    for ga in gj["annotations"]:
        pa = preds.get(ga.get("image_id"))
        if pa is None:
            raise BadDatasetError(f"no prediction for {_image_name(ga)}")
        pairs.append((ga, pa))

    def one(pair: tuple[Mapping[str, Any], Mapping[str, Any]], indexer: IdIndexer
            ) -> tuple[np.ndarray, np.ndarray]:
        return pair_stats(acc, gt_folder, pred_folder, pair, indexer)

    if mapper is not None:  # another engine (Ray) maps the images; sums still added in image order
        for stats in mapper(pair_stats, [(acc, gt_folder, pred_folder, pair) for pair in pairs]):
            acc.add_stats(*stats)
        return acc.results()
    if processes and workers > 1 and len(pairs) >= 2 and _can_fork():
        for stats in _forked_stats(acc, gt_folder, pred_folder, pairs, workers):
            acc.add_stats(*stats)
        return acc.results()
    if workers <= 1 or len(pairs) < 2:
        ix = IdIndexer()
        for pair in pairs:
            acc.add_stats(*one(pair, ix))
    else:
        import threading

        local = threading.local()

        def job(pair: tuple[Mapping[str, Any], Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
            if not hasattr(local, "ix"):
                local.ix = IdIndexer()
            return one(pair, local.ix)

        with ThreadPoolExecutor(max_workers=workers) as ex:
            for stats in ex.map(job, pairs):  # in image order, so sums are deterministic
                acc.add_stats(*stats)
    return acc.results()


def _can_fork() -> bool:
    """Fork is safe here: the platform has it and no other thread runs (a thread holding a lock
    at the fork would leave it locked in the child)."""
    import threading

    return hasattr(os, "fork") and threading.active_count() == 1


def _forked_stats(acc: PQAccumulator, gt_folder: Path, pred_folder: Path,
                  pairs: list[tuple[Mapping[str, Any], Mapping[str, Any]]], workers: int
                  ) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Every image's stats, in image order: the images cut into ``workers`` contiguous runs, the
    first counted here and each other one in a forked child that sends its stats back through a
    pipe. Plain ``os.fork``: a ``multiprocessing`` pool's set-up (its processes, threads and
    queues) costs as much as a few images, and this process would sit idle. A child's refusal
    (BadDatasetError) is raised here, the first run's first."""
    import gc
    import pickle

    n = min(workers, len(pairs))
    edges = [round(k * len(pairs) / n) for k in range(n + 1)]
    kids: list[tuple[int, int]] = []
    # The objects alive now move out of the collector's reach, and children never collect: a
    # collection writes to every object it visits, and each written page is copied on write
    # (hundreds of megabytes in a big process).
    gc.freeze()
    runs: list[Any] = []
    try:
        for k in range(1, n):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: count its run, send it, and leave, whatever happens, without
                try:  # running any exit handler or the parent's code below
                    gc.disable()
                    os.close(r)
                    try:
                        ix = IdIndexer()
                        out: tuple[str, Any] = ("ok", [pair_stats(acc, gt_folder, pred_folder, p, ix)
                                                        for p in pairs[edges[k]:edges[k + 1]]])
                    except BaseException as err:  # noqa: BLE001 - every failure goes back to the parent
                        out = ("error", err)
                    try:
                        data = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
                    except Exception as err:  # noqa: BLE001 - an exception that does not pickle
                        data = pickle.dumps(("error", RuntimeError(f"a PQ worker failed: {err}")))
                    with os.fdopen(w, "wb") as f:
                        f.write(data)
                finally:
                    os._exit(0)
            os.close(w)
            kids.append((pid, r))
        try:
            ix = IdIndexer()
            runs.append(("ok", [pair_stats(acc, gt_folder, pred_folder, p, ix)
                                for p in pairs[edges[0]:edges[1]]]))
        except BaseException as err:  # noqa: BLE001 - raised below, once the children are reaped
            runs.append(("error", err))
    finally:  # every child reaped whatever happened here (a failed fork too)
        for pid, r in kids:  # read each pipe to its end (a child blocks on a full pipe), then reap
            with os.fdopen(r, "rb") as f:
                data = f.read()
            os.waitpid(pid, 0)
            runs.append(pickle.loads(data) if data else ("error", RuntimeError("a PQ worker process died")))
        gc.unfreeze()
    for status, payload in runs:
        if status == "error":
            raise payload
        yield from payload


def pair_stats(acc: PQAccumulator, gt_folder: Path, pred_folder: Path,
               pair: tuple[Mapping[str, Any], Mapping[str, Any]], indexer: IdIndexer | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """One (ground truth, prediction) annotation pair's ``(iou, counts)`` from its PNGs; pure
    (``acc`` is only read), so it runs in threads or on other machines."""
    keep_freed_memory()  # once per process: a worker elsewhere reuses its buffers too
    ga, pa = pair
    where = _image_name(ga)
    for a, side in ((ga, "ground-truth"), (pa, "prediction")):
        if "file_name" not in a or not isinstance(a.get("segments_info"), list):
            raise BadDatasetError(f"{where}: the {side} annotation lacks file_name or segments_info")
    try:
        gmap = _read_ids(gt_folder / ga["file_name"])
        pmap = _read_ids(pred_folder / pa["file_name"])
    except BadDatasetError as err:
        raise BadDatasetError(f"{where}: {err}") from None
    try:
        return acc.image_stats(gmap, ga["segments_info"], pmap, pa["segments_info"],
                               where=where, indexer=indexer)
    except (KeyError, TypeError, ValueError) as err:
        raise BadDatasetError(f"{where}: a segment in segments_info lacks a valid {err}") from None


def _read_ids(path: Path) -> np.ndarray | IdRuns:
    """Runs when the PNG allows (OpenCV's None/Sub rows: no pixel decoded), else the id map
    (adaptive files through zlib-ng and libspng, anything else libpng), counted per run of
    equal pixel pairs (:func:`~segviewer.analysis.matching.pair_counts`)."""
    return read_panoptic_ids(path)


def pair_counts_runs(gt: IdRuns, gt_ids: np.ndarray, pred: IdRuns, pred_ids: np.ndarray, *,
                     where: str = "image") -> PairCounts:
    """:func:`~segviewer.analysis.matching.pair_counts` (strict, as for files) from two run-length maps.

    The pieces where both maps are constant start at the union of both maps' run starts; each
    is looked up once and counted with its length. Same matrix, same checks and messages.
    """
    if gt.shape != pred.shape:
        raise BadDatasetError(f"{where}: prediction is {pred.shape[1]}x{pred.shape[0]} but the "
                              f"ground truth is {gt.shape[1]}x{gt.shape[0]}")
    gt_ids = check_segment_ids(gt_ids, where, "ground-truth")
    pred_ids = check_segment_ids(pred_ids, where, "predicted")
    g, p = len(gt_ids), len(pred_ids)
    g_idx, p_idx = index_values(gt.ids, gt_ids), index_values(pred.ids, pred_ids)  # per run
    # Merge the two sorted start lists; a pred start equal to a gt start goes first, so the last
    # entry of each group of equal starts has both runs counted in the running indices.
    at = np.searchsorted(gt.starts, pred.starts)
    merged = np.insert(gt.starts, at, pred.starts)
    from_pred = np.zeros(len(merged), bool)
    from_pred[at + np.arange(len(at))] = True
    p_run = np.cumsum(from_pred) - 1
    g_run = np.arange(len(merged)) - p_run - 1  # = cumsum(~from_pred) - 1
    last = np.empty(len(merged), bool)
    np.not_equal(merged[1:], merged[:-1], out=last[:-1])
    last[-1] = True
    starts = merged[last]
    lengths = np.diff(starts, append=gt.shape[0] * gt.shape[1])
    key = g_idx[g_run[last]] * (p + 2) + p_idx[p_run[last]]
    matrix = np.bincount(key, weights=lengths, minlength=(g + 2) * (p + 2)).astype(np.int64).reshape(g + 2, p + 2)
    check_listed_ids(matrix, gt_ids, pred_ids, gt.ids, pred.ids, where)
    return PairCounts(gt_ids, pred_ids, matrix)


# --------------------------------------------------------------------------------------------
# In memory: PanopticMap pairs (the UI's per-image numbers)


def _map_segments(pm: PanopticMap) -> list[dict[str, Any]]:
    return [{"id": s.id, "category_id": s.category_id, "iscrowd": int(s.iscrowd)} for s in pm.segments]


def _map_categories(gt: PanopticMap) -> list[dict[str, Any]]:
    isthing = list(gt.isthing)
    if len(isthing) != len(gt.categories):
        isthing = [False] * len(gt.categories)
        for s in gt.segments:
            isthing[s.category_id] = bool(s.isthing)
    return [{"id": i, "name": n, "isthing": int(t)} for i, (n, t) in enumerate(zip(gt.categories, isthing))]


def pq_from_maps(pairs: Iterable[tuple[PanopticMap, PanopticMap]]) -> dict[str, Any]:
    """PQ over ``(prediction, ground truth)`` :class:`PanopticMap` pairs sharing one category list
    (category ids are indices into it). Segments listed but absent from the map are allowed here
    (they count as area 0); ids in the map are always listed (PanopticMap checks that)."""
    acc: PQAccumulator | None = None
    ix = IdIndexer()
    for k, (pred, gt) in enumerate(pairs):
        if tuple(pred.categories) != tuple(gt.categories):
            raise BadDatasetError(f"image {k}: prediction and ground truth use different category lists")
        if acc is None:
            acc = PQAccumulator(_map_categories(gt))
        gseg, pseg = _map_segments(gt), _map_segments(pred)
        gids = np.array([s["id"] for s in gseg], np.int64)
        pids = np.array([s["id"] for s in pseg], np.int64)
        # Drop listed-but-empty segments so the strict file checks do not fire on them.
        gpresent = np.isin(gids, gt.segment_ids) if len(gids) else gids.astype(bool)
        ppresent = np.isin(pids, pred.segment_ids) if len(pids) else pids.astype(bool)
        acc.add(gt.segment_ids, [s for s, ok in zip(gseg, gpresent) if ok], pred.segment_ids,
                [s for s, ok in zip(pseg, ppresent) if ok], where=f"image {k}", indexer=ix)
    if acc is None:
        raise BadDatasetError("no image pairs to evaluate")
    return acc.results()


def image_pq(pred: PanopticMap, gt: PanopticMap) -> dict[str, Any]:
    """PQ, SQ, RQ of one image as a plain dict (for the metrics panel)."""
    return pq_from_maps([(pred, gt)])
