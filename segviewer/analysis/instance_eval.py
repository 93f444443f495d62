"""Box and mask AP through pycocotools' COCOeval (we do not re-implement AP).

:func:`coco_evaluate` takes a COCO instances ground-truth (path or dict) and COCO results (path or
list of dicts) and returns, per IoU type, the twelve numbers ``COCOeval.summarize`` prints, as a
plain dict: ``AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl``. COCOeval's
printing is captured, not shown. Values of -1 (COCOeval's "no ground truth in this range") are
kept as -1 so that they are not mistaken for a score of zero.

Backends: pycocotools is the reference. ``faster-coco-eval`` (an optional extra: ``pip install
segviewer[fast]``) gives the same twelve numbers, bit for bit on our tests, several times faster
(bench/dataset.py, 5,000 COCO-sized images, bbox + segm: 12 s against 105 s); ``backend="auto"`` (the default for whole datasets)
uses it when it is installed. The per-image numbers of the dock and the dataset table use
pycocotools (:func:`evaluate_detections`), so they never depend on what is installed.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.errors import BadDatasetError
from segviewer.core.results import Detections

__all__ = ["STAT_NAMES", "BACKENDS", "coco_evaluate", "evaluate_detections", "faster_available"]

BACKENDS = ("auto", "pycocotools", "faster")


def faster_available() -> bool:
    """Whether faster-coco-eval is installed (the "auto" backend then uses it)."""
    import importlib.util

    return importlib.util.find_spec("faster_coco_eval") is not None

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _load(obj: str | Path | Mapping[str, Any] | Sequence[Mapping[str, Any]], what: str) -> Any:
    if isinstance(obj, (str, Path)):
        p = Path(obj)
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BadDatasetError(f"{what} {p} is missing") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BadDatasetError(f"{p.name} is not a readable JSON file ({err})") from None
    return _fresh_records(obj)


def _fresh_records(obj: Any) -> Any:
    """A copy deep enough that evaluating never changes the caller's data: the lists and each
    record dict are new (COCO's loaders add and replace keys of records: area, id, bbox,
    segmentation), the values inside records are shared (never modified in place). A deep copy
    of a COCO-sized file took longer than faster-coco-eval's whole evaluation."""
    if isinstance(obj, Mapping):
        return {k: [dict(x) if isinstance(x, Mapping) else x for x in v] if isinstance(v, list) else v
                for k, v in obj.items()}
    return [dict(x) if isinstance(x, Mapping) else x for x in obj]


def _check_results(gt: Mapping[str, Any], results: list[Any]) -> None:
    images = {im.get("id") for im in gt.get("images", [])}
    cats = {c.get("id") for c in gt.get("categories", [])}
    sizes = {im.get("id"): (im.get("height"), im.get("width")) for im in gt.get("images", [])}
    for k, r in enumerate(results):
        if not isinstance(r, Mapping):
            raise BadDatasetError(f"result #{k} is not a JSON object")
        if r.get("image_id") not in images:
            raise BadDatasetError(f"result #{k} refers to image {r.get('image_id')!r}, which the ground truth lacks")
        if r.get("category_id") not in cats:
            raise BadDatasetError(f"result #{k} (image {r['image_id']}) has unknown category {r.get('category_id')!r}")
        if "score" not in r:
            raise BadDatasetError(f"result #{k} (image {r['image_id']}) has no score")
        if "bbox" not in r and "segmentation" not in r:
            raise BadDatasetError(f"result #{k} (image {r['image_id']}) has neither bbox nor segmentation")
        seg = r.get("segmentation")
        if isinstance(seg, Mapping) and "size" in seg:
            h, w = sizes[r["image_id"]]
            if list(seg["size"]) != [h, w]:
                raise BadDatasetError(f"result #{k}: its mask is {seg['size'][1]}x{seg['size'][0]} but image "
                                      f"{r['image_id']} is {w}x{h}")


def coco_evaluate(gt: str | Path | Mapping[str, Any], results: str | Path | Sequence[Mapping[str, Any]],
                  iou_types: Sequence[str] | None = None, backend: str = "auto") -> dict[str, dict[str, float]]:
    """``{"bbox": {...}, "segm": {...}}`` from COCOeval; ``iou_types`` defaults to ``bbox`` plus
    ``segm`` when every result has a ``segmentation``. ``backend``: see the module docstring."""
    if backend not in BACKENDS:
        raise BadDatasetError(f"unknown COCO evaluation backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "faster" or (backend == "auto" and faster_available()):
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

    gt_d = _load(gt, "ground-truth JSON")
    res = _load(results, "results JSON")
    if isinstance(res, Mapping) and isinstance(res.get("annotations"), list):
        res = res["annotations"]  # a whole COCO file given as results
    if not isinstance(gt_d, Mapping) or not all(isinstance(gt_d.get(k), list) for k in ("images", "annotations", "categories")):
        raise BadDatasetError("the ground truth is not a COCO instances JSON (images, annotations, categories)")
    if not isinstance(res, list):
        raise BadDatasetError("the results are not a list of COCO result records")
    _check_results(gt_d, res)
    for k, a in enumerate(gt_d["annotations"]):
        a.setdefault("iscrowd", 0)
        a.setdefault("id", k + 1)
        if "area" not in a and "bbox" in a:
            a["area"] = float(a["bbox"][2]) * float(a["bbox"][3])
    if iou_types is None:
        iou_types = ["bbox"] + (["segm"] if res and all("segmentation" in r for r in res) else [])
    out: dict[str, dict[str, float]] = {}
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        coco_gt = COCO()
        coco_gt.dataset = dict(gt_d)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(res) if res else None
        for t in iou_types:
            if t not in ("bbox", "segm"):
                raise BadDatasetError(f"unknown IoU type {t!r}; use bbox or segm")
            if coco_dt is None:  # no detections at all: AP 0 where there is ground truth
                out[t] = {k: 0.0 for k in STAT_NAMES}
                continue
            ev = COCOeval(coco_gt, coco_dt, t)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            out[t] = {k: float(v) for k, v in zip(STAT_NAMES, ev.stats)}  # faster's extra stats dropped
    return out


def _to_records(dets: Detections, image_id: int, cat_ids: Sequence[int]) -> list[dict[str, Any]]:
    try:  # the render engineer's converter, when it is there
        from segviewer.core.coco_results import detections_to_coco
    except ImportError:
        detections_to_coco = None
    if detections_to_coco is not None:
        return list(detections_to_coco(dets, image_id, cat_ids))
    from pycocotools import mask as mask_utils

    out = []
    for i in range(len(dets)):
        x0, y0, x1, y1 = (float(v) for v in dets.boxes[i])
        r: dict[str, Any] = {"image_id": image_id, "category_id": int(cat_ids[int(dets.class_ids[i])]),
                             "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(dets.scores[i])}
        if dets.masks is not None:
            rle = mask_utils.encode(np.asfortranarray(dets.masks.full(i).astype(np.uint8)))
            r["segmentation"] = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
        out.append(r)
    return out


def evaluate_detections(pairs: Sequence[tuple[Detections, Detections]], backend: str = "pycocotools"
                        ) -> dict[str, dict[str, float]]:
    """AP of in-memory ``(prediction, ground truth)`` pairs (class ids index the same categories).

    Ground-truth areas are mask areas when masks are given (as COCO's), else box areas.
    """
    if not pairs:
        raise BadDatasetError("no image pairs to evaluate")
    cats = pairs[0][1].categories
    cat_ids = list(range(1, len(cats) + 1))
    images, anns, results = [], [], []
    for k, (pred, gt) in enumerate(pairs):
        if pred.categories != cats or gt.categories != cats:
            raise BadDatasetError(f"image {k}: prediction and ground truth use different category lists")
        if pred.image_size != gt.image_size:
            raise BadDatasetError(f"image {k}: prediction is {pred.image_size} but ground truth is {gt.image_size}")
        h, w = gt.image_size
        images.append({"id": k + 1, "height": h, "width": w, "file_name": f"{k}.png"})
        for r in _to_records(gt, k + 1, cat_ids):
            r.pop("score", None)
            r["id"] = len(anns) + 1
            r["iscrowd"] = 0
            r["area"] = float(r["bbox"][2] * r["bbox"][3])
            anns.append(r)
        if gt.masks is not None:
            for a, area in zip(anns[len(anns) - len(gt):], gt.masks.areas()):
                a["area"] = float(area)
        results.extend(_to_records(pred, k + 1, cat_ids))
    gt_doc = {"images": images, "annotations": anns,
              "categories": [{"id": i, "name": n} for i, n in zip(cat_ids, cats)]}
    types = ["bbox"] + (["segm"] if all(p.masks is not None and g.masks is not None for p, g in pairs) else [])
    return coco_evaluate(gt_doc, results, types, backend)
