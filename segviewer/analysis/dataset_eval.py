"""Per-image metrics for a whole dataset, as rows of a table, computed once and stored.

A row is the SAME numbers the Metrics dock shows for that image: :func:`evaluate_image` calls
:func:`segviewer.analysis.evaluation.image_report` (the dock's function) and flattens its
``metrics`` (COCOeval per image, PQ, the semantic confusion matrix) and its error map's TP / FP /
FN counts, then adds the image's TIDE error counts (:mod:`segviewer.analysis.tide`) for masks
and boxes. Nothing is re-derived here.

:func:`run_dataset` walks a :class:`~segviewer.core.dataset_index.DatasetIndex`: for each image
it looks in the :class:`~segviewer.core.result_store.ResultStore` (content hash, model id,
weights hash, ground-truth key) and only predicts and scores what is missing, committing each
image as it goes, so a killed run resumes where it stopped. No Qt, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from segviewer.analysis.evaluation import ImageEval, MergeParams, image_report
from segviewer.core.results import Detections, PanopticMap, SemanticMap

__all__ = ["ROW_KEYS", "ERROR_KEYS", "evaluate_image", "image_row", "run_dataset", "row_value", "summarize_rows",
           "shown_result", "dataset_tide", "panoptic_report", "dataset_instance_totals", "with_empty_masks"]

DEFAULT_PARAMS = MergeParams()
_SHORT = ("cls", "loc", "both", "dupe", "bkg", "miss")
#: TIDE counts per image: ``mask_cls`` ... ``mask_miss``, ``box_cls`` ... ``box_miss``.
ERROR_KEYS = tuple(f"{p}_{s}" for p in ("mask", "box") for s in _SHORT)
#: Every metric column of a row, in table order (a row may lack some: None / missing = not defined).
ROW_KEYS = ("pred", "pq", "sq", "rq", "miou", "pixel_acc", "box_ap", "box_ap50", "mask_ap", "mask_ap50",
            "kp_ap", "kp_ap50", "tp", "fp", "fn") + ERROR_KEYS + ("infer_ms",)
#: The row keys that are fractions (shown in %, averaged in totals); the rest are counts or ms.
FRACTION_KEYS = ("pq", "sq", "rq", "miou", "pixel_acc", "box_ap", "box_ap50", "mask_ap", "mask_ap50",
                 "kp_ap", "kp_ap50")


def _ap(v: float | None) -> float | None:
    return None if v is None or v < 0 else float(v)


def image_row(ev: ImageEval) -> dict[str, Any]:
    """One table row from an :class:`ImageEval` (numbers only; missing metrics are left out)."""
    from segviewer.analysis.tide import ERROR_TYPES, classify_image

    row: dict[str, Any] = {}
    m = ev.metrics
    if "semantic" in m:
        row["miou"] = m["semantic"]["mean_iou"]
        row["pixel_acc"] = m["semantic"]["pixel_accuracy"]
    if "panoptic" in m:
        a = m["panoptic"]["all"]
        row.update(pq=a["pq"], sq=a["sq"], rq=a["rq"])
    if "instances" in m:
        for t, pre in (("bbox", "box"), ("segm", "mask")):
            if t in m["instances"]:
                row[f"{pre}_ap"] = _ap(m["instances"][t]["AP"])
                row[f"{pre}_ap50"] = _ap(m["instances"][t]["AP50"])
    if "keypoints" in m:  # OKS keypoint AP, when the ground truth has COCO keypoints
        row["kp_ap"] = _ap(m["keypoints"]["AP"])
        row["kp_ap50"] = _ap(m["keypoints"]["AP50"])
    if ev.errors is not None:
        row.update(tp=ev.errors.counts["TP"], fp=ev.errors.counts["FP"], fn=ev.errors.counts["FN"])
    if "instances" in ev.pairs:
        pred, gt = ev.pairs["instances"]
        row["pred"] = len(pred)
        modes = [("bbox", "box")] + ([("segm", "mask")] if pred.masks is not None and gt.masks is not None else [])
        for mode, pre in modes:
            if mode == "segm" and ev.error_kind == "instances" and ev.errors.error_counts:
                counts = ev.errors.error_counts  # the error layer's own classification
            else:
                counts = classify_image(pred, gt, mode).counts()
            for name, short in zip(ERROR_TYPES, _SHORT):
                row[f"{pre}_{short}"] = counts[name]
    elif "semantic" in ev.pairs:
        row["pred"] = len(ev.pairs["semantic"][0].categories)
    return row


def evaluate_image(result: Detections | SemanticMap | PanopticMap | tuple[Detections, SemanticMap] | None, gt: Any,
                   params: MergeParams = DEFAULT_PARAMS, name: str = "this image",
                   semantic: SemanticMap | None = None) -> tuple[ImageEval, dict[str, Any]]:
    """The dock's report for one image and its table row. ``result`` is the instance model's
    Detections, the semantic model's map, both as a panoptic pair (then the merge is scored
    too, as in the window and ``predict --panoptic``), or a panoptic model's map
    (:func:`panoptic_report`); ``semantic`` adds a map beside Detections."""
    if isinstance(result, tuple):
        result, semantic = result
    if isinstance(result, PanopticMap):
        ev = panoptic_report(result, gt)
        return ev, image_row(ev)
    inst = result if isinstance(result, Detections) else None
    sem = result if isinstance(result, SemanticMap) else semantic
    has_masks = inst is None or inst.masks is not None
    kps = inst if inst is not None and inst.keypoints is not None else None  # keypoint AP too
    ev = image_report(inst, sem, gt, params, name, want_ap=True, want_errors=has_masks, keypoints=kps)
    return ev, image_row(ev)


def panoptic_report(pred: PanopticMap, gt: Any) -> ImageEval:
    """A panoptic model's own map scored as the window scores a merged one (classes matched by
    name to the ground truth's, then PQ and the segment error map); only PQ when the ground
    truth has panoptic annotations, a note otherwise."""
    from segviewer.analysis.error_map import panoptic_errors
    from segviewer.analysis.evaluation import _isthing, remap_panoptic  # noqa: PLC2701 - the dock's own helper
    from segviewer.analysis.pq import image_pq

    ev = ImageEval(merged=pred)
    g = None if gt is None else gt.panoptic
    if g is None:
        ev.notes.append("A panoptic model is scored against panoptic ground truth (PQ); this image has none.")
        return ev
    p = remap_panoptic(pred, g.categories, _isthing(g))  # as image_report remaps a merged map
    ev.metrics["panoptic"] = image_pq(p, g)
    ev.pairs["panoptic"] = (p, g)
    ev.errors, ev.error_kind = panoptic_errors(p, g), "panoptic"
    ev.pred_names = {s.id: p.categories[s.category_id] for s in p.segments}
    ev.gt_names = {s.id: g.categories[s.category_id] for s in g.segments}
    return ev


def row_value(row: dict[str, Any], key: str) -> float:
    """A row's value as a float for sorting (NaN where not defined)."""
    v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) else math.nan


def shown_result(result: Any, params: MergeParams = DEFAULT_PARAMS) -> Any:
    """What a layer draws of a stored prediction: a panoptic pair as its merged panoptic map (the
    map that is scored), anything else as it is."""
    if isinstance(result, tuple):
        from segviewer.analysis.evaluation import merge_panoptic

        return merge_panoptic(result[0], result[1], params)[0]
    return result


_SUMMED = ("pred", "tp", "fp", "fn") + ERROR_KEYS


def summarize_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Dataset totals of table rows, cheap enough for every refresh: counts (predictions,
    TP/FP/FN, TIDE types) summed, every other metric averaged over the images that define it
    (a mean of per-image values, NOT the dataset-level AP or PQ, which pool every image first),
    and ``images``: how many rows there are."""
    sums: dict[str, float] = {}
    ns: dict[str, int] = {}
    images = 0
    for r in rows:
        images += 1
        for k in ROW_KEYS:
            v = row_value(r, k)
            if not math.isnan(v):
                sums[k] = sums.get(k, 0.0) + v
                ns[k] = ns.get(k, 0) + 1
    out: dict[str, float] = {"images": float(images)}
    for k in ROW_KEYS:
        if k in sums:
            out[k] = sums[k] if k in _SUMMED else sums[k] / ns[k]
    return out


def with_empty_masks(d: Detections) -> Detections:
    """No detections on an image: scored for masks too (an empty mask set), as ``eval`` does, so
    one empty image does not turn a run's mask numbers off."""
    if d.masks is not None or len(d):
        return d
    from segviewer.core.results import MaskSet

    return Detections(d.image_size, d.boxes, d.scores, d.class_ids, d.categories,
                      masks=MaskSet(d.image_size, (), np.zeros((0, 2), np.int32)))


def dataset_tide(items: Iterable[tuple[Any, Any]], should_stop: Callable[[], bool] | None = None
                 ) -> dict[str, dict[str, Any]] | None:
    """TIDE over a dataset run (the dock's totals): each type's count, dAP and AP50 for boxes
    and, when the predictions have masks, masks (``TideReport.as_dict``). ``items`` yields
    ``(stored prediction, GroundTruth)`` per image, read one at a time (a pair's instance half is
    scored; predictions are matched to the ground truth's classes by name, as the rows are).
    None when the run has no instance predictions or the dataset no instance ground truth, or
    when ``should_stop()`` says so between images."""
    from segviewer.analysis.evaluation import remap_detections
    from segviewer.analysis.tide import classify_image, tide_from_images

    evs: dict[str, list[Any]] = {"bbox": [], "segm": []}
    cats: tuple[str, ...] = ()
    masks = True
    for pred, gt in items:
        if should_stop is not None and should_stop():
            return None
        inst = pred[0] if isinstance(pred, tuple) else pred
        if not isinstance(inst, Detections) or gt is None or gt.instances is None:
            continue
        cats = gt.instances.categories
        p = with_empty_masks(remap_detections(inst, cats))
        evs["bbox"].append(classify_image(p, gt.instances, "bbox"))
        masks = masks and p.masks is not None and gt.instances.masks is not None
        if masks:
            evs["segm"].append(classify_image(p, gt.instances, "segm"))
    if not evs["bbox"]:
        return None
    modes = ("bbox", "segm") if masks else ("bbox",)
    return {m: tide_from_images(evs[m], cats, m).as_dict() for m in modes}


def dataset_instance_totals(items: Iterable[tuple[int, Any, Any]], coco: Any, backend: str = "auto",
                            should_stop: Callable[[], bool] | None = None) -> dict[str, Any] | None:
    """An instance run's dataset numbers from ONE pass over its stored predictions: TIDE
    (:func:`dataset_tide`) and the dataset-level box/mask AP pooled over the images as COCOeval
    pools them (``instance_eval.coco_evaluate``: faster-coco-eval where installed, whose numbers
    equal pycocotools'), NOT the mean of per-image APs. ``items`` yields ``(COCO image id,
    stored prediction, GroundTruth)``; ``coco`` is the dataset's ``CocoInstances``. Only the
    images given are evaluated (a stopped run's missing images are left out, not counted as
    misses). ``{"tide": ..., "ap": {"bbox": {...}, "segm": {...}} or None, "backend": name}``,
    plus ``"keypoints"``: the keypoint AP (OKS) pooled over the images whose predictions and
    ground truth both carry keypoints (:func:`keypoint_eval.evaluate_keypoint_pairs`), else None;
    None as :func:`dataset_tide`."""
    from segviewer.analysis.evaluation import remap_detections
    from segviewer.analysis.instance_eval import coco_evaluate, faster_available
    from segviewer.core.coco_results import detections_to_coco

    records: list[dict[str, Any]] = []
    ids: list[int] = []
    kp_pairs: list[tuple[Detections, Detections]] = []
    cat_ids = list(coco.category_ids)

    def tee() -> Any:
        for iid, pred, gt in items:
            ids.append(int(iid))
            inst = pred[0] if isinstance(pred, tuple) else pred
            if isinstance(inst, Detections):
                mine = remap_detections(inst, coco.categories)
                records.extend(detections_to_coco(mine, int(iid), cat_ids))
                g = getattr(gt, "instances", None)
                if mine.keypoints is not None and g is not None and g.keypoints is not None:
                    kp_pairs.append((mine, g))
            yield pred, gt

    tide = dataset_tide(tee(), should_stop)
    if tide is None:
        return None
    ap = None
    if records:
        sub = {"images": [coco.images[i] for i in ids], "annotations": [a for i in ids for a in coco.annotations(i)],
               "categories": [{"id": c, "name": n} for c, n in zip(cat_ids, coco.categories)]}
        ap = coco_evaluate(sub, records, backend=backend)
    used = "faster-coco-eval" if backend == "faster" or (backend == "auto" and faster_available()) else "pycocotools"
    kps = None
    if kp_pairs:
        from segviewer.analysis.keypoint_eval import evaluate_keypoint_pairs

        kps = evaluate_keypoint_pairs(kp_pairs)
    return {"tide": tide, "ap": ap, "backend": used, "keypoints": kps}


PredictFn = Callable[[int], tuple[Detections | SemanticMap | PanopticMap | tuple[Detections, SemanticMap], float]]


def run_dataset(index: Any, predict: PredictFn, store: Any, model_id: str, weights_hash: str,
                params: MergeParams = DEFAULT_PARAMS, should_stop: Callable[[], bool] | None = None,
                progress: Callable[[int, int, dict[str, Any] | None], None] | None = None,
                images: list[int] | None = None) -> dict[int, dict[str, Any]]:
    """Rows for ``images`` (default: all) of ``index``, predicting and scoring only what the
    store lacks; ``predict(i) -> (result, milliseconds)``. Stops between images when
    ``should_stop()`` says so (what is done stays stored). ``progress(done, total, row)``."""
    todo = list(range(len(index))) if images is None else list(images)
    hashes = [store.image_hash(index.paths[i]) for i in todo]
    have = store.metrics(model_id, weights_hash, index.gt_key, hashes)
    out: dict[int, dict[str, Any]] = {}
    for k, (i, h) in enumerate(zip(todo, hashes)):
        if should_stop is not None and should_stop():
            break
        row = have.get(h)
        if row is None:
            stored = store.get_prediction(h, model_id, weights_hash)
            if stored is None:
                result, ms = predict(i)
            else:
                result, ms = stored
            _, row = evaluate_image(result, index.ground_truth(i), params, index.paths[i].name)
            row["infer_ms"] = ms
            store.put_both(h, model_id, weights_hash, index.gt_key, result, ms, row)
        out[i] = row
        if progress is not None:
            progress(k + 1, len(todo), row)
    return out
