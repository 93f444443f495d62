"""Keypoint AP (OKS) through pycocotools' COCOeval with ``iouType="keypoints"``.

Why a module of its own: box and mask AP (:mod:`segviewer.analysis.instance_eval`) share twelve
summary numbers; keypoint AP has ten (no small objects: COCO does not annotate keypoints on them)
and its own similarity, the object keypoint similarity
``OKS = sum_i exp(-d_i^2 / (2 s^2 k_i^2)) [v_i > 0] / sum_i [v_i > 0]`` with ``s^2`` the ground
truth's area and ``k_i = 2 sigma_i`` per keypoint type (COCO's 17 sigmas are pycocotools'
defaults). We do not re-implement it: the records go to COCOeval as COCO keypoint results
(``image_id, category_id, keypoints, score``; a result's ``bbox`` is left out so that, as in
COCO's keypoint challenge, its area comes from its keypoints' extent).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.errors import BadDatasetError

__all__ = ["KEYPOINT_STAT_NAMES", "has_keypoint_annotations", "keypoint_results", "keypoint_evaluate",
           "evaluate_keypoint_pairs"]

KEYPOINT_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def has_keypoint_annotations(gt: Mapping[str, Any]) -> bool:
    """Whether a COCO ground truth annotates keypoints (some annotation has a visible one)."""
    for a in gt.get("annotations", []) or []:
        kp = a.get("keypoints") if isinstance(a, Mapping) else None
        if kp and any(float(v) > 0 for v in list(kp)[2::3]):
            return True
    return False


def keypoint_results(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The results that carry keypoints, as COCO keypoint results (no bbox or segmentation)."""
    return [{k: v for k, v in r.items() if k not in ("bbox", "segmentation", "area")}
            for r in results if isinstance(r, Mapping) and r.get("keypoints")]


def _num_keypoints(gt: Mapping[str, Any], results: list[dict[str, Any]]) -> int:
    sizes = {len(a["keypoints"]) for a in gt.get("annotations", []) if a.get("keypoints")}
    sizes |= {len(r["keypoints"]) for r in results}
    if len(sizes) != 1 or next(iter(sizes)) % 3:
        raise BadDatasetError(f"keypoints must be [x, y, v] * K with one K throughout; found lists of "
                              f"{', '.join(str(s) for s in sorted(sizes))} numbers")
    return next(iter(sizes)) // 3


def keypoint_evaluate(gt: str | Path | Mapping[str, Any], results: str | Path | Sequence[Mapping[str, Any]],
                      sigmas: Sequence[float] | None = None) -> dict[str, float]:
    """The ten numbers ``COCOeval(iouType="keypoints").summarize`` prints, by name
    (:data:`KEYPOINT_STAT_NAMES`; -1 where COCOeval has no ground truth in that range).
    ``sigmas`` (one per keypoint type) default to COCO's, which only fit 17 keypoints."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from segviewer.analysis.instance_eval import _load

    gt_d = _load(gt, "ground-truth JSON")
    res = _load(results, "results JSON")
    if isinstance(res, Mapping) and isinstance(res.get("annotations"), list):
        res = res["annotations"]
    if not isinstance(gt_d, Mapping) or not all(isinstance(gt_d.get(k), list) for k in ("images", "annotations", "categories")):
        raise BadDatasetError("the ground truth is not a COCO JSON (images, annotations, categories)")
    if not has_keypoint_annotations(gt_d):
        raise BadDatasetError("the ground truth annotates no keypoints, so there is no keypoint AP")
    kp_res = keypoint_results(res if isinstance(res, list) else [])
    if not kp_res:
        raise BadDatasetError("no result carries keypoints; keypoint AP needs a keypoint model's results")
    k = _num_keypoints(gt_d, kp_res)
    for i, a in enumerate(gt_d["annotations"]):
        a.setdefault("iscrowd", 0)
        a.setdefault("id", i + 1)
        if "area" not in a and "bbox" in a:
            a["area"] = float(a["bbox"][2]) * float(a["bbox"][3])
        if "num_keypoints" not in a:  # COCOeval reads it for every annotation (0: ignored)
            a["num_keypoints"] = int(sum(1 for v in (a.get("keypoints") or [])[2::3] if float(v) > 0))
        if not a.get("keypoints"):  # another category's annotation: OKS reads its (empty) list
            a["keypoints"] = [0.0] * (3 * k)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = dict(gt_d)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(kp_res)
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        if len(ev.params.kpt_oks_sigmas) != k:
            raise BadDatasetError(f"OKS needs one sigma per keypoint type: {len(ev.params.kpt_oks_sigmas)} "
                                  f"sigmas (COCO's 17 by default) for {k} keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(KEYPOINT_STAT_NAMES, ev.stats)}


def evaluate_keypoint_pairs(pairs: Sequence[tuple[Any, Any]], sigmas: Sequence[float] | None = None
                            ) -> dict[str, float]:
    """Keypoint AP of in-memory ``(prediction, ground truth)`` Detections pairs (the Metrics dock's
    image and folder numbers): written as the COCO ground truth and keypoint results that
    ``segviewer eval`` reads, then scored by :func:`keypoint_evaluate`, so the numbers equal
    pycocotools on the files. Both sides index the same category list; the ground truth's
    keypoints carry COCO's visibility ``v`` as their third column. A ground-truth annotation's
    ``area`` (the OKS scale) is its mask's pixel count when it has a mask (COCO's segmentation
    area), else its box's area; ``num_keypoints`` counts ``v > 0``."""
    from segviewer.core.coco_results import detections_to_coco

    if not pairs:
        raise BadDatasetError("no image pairs to evaluate")
    cats = pairs[0][1].categories
    cat_ids = list(range(1, len(cats) + 1))
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for k, (pred, gt) in enumerate(pairs):
        if pred.categories != cats or gt.categories != cats:
            raise BadDatasetError(f"image {k}: prediction and ground truth use different category lists")
        if gt.keypoints is None:
            continue
        h, w = gt.image_size
        images.append({"id": k + 1, "height": h, "width": w, "file_name": f"{k}.png"})
        areas = gt.masks.areas() if gt.masks is not None else None
        for i in range(len(gt)):
            x0, y0, x1, y1 = (float(v) for v in gt.boxes[i])
            kp = gt.keypoints[i]
            anns.append({"id": len(anns) + 1, "image_id": k + 1, "category_id": cat_ids[int(gt.class_ids[i])],
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0,
                         "area": float(areas[i]) if areas is not None else (x1 - x0) * (y1 - y0),
                         "keypoints": [float(v) for v in kp.ravel()],
                         "num_keypoints": int(np.count_nonzero(kp[:, 2] > 0))})
        if pred.keypoints is not None:
            results.extend(detections_to_coco(pred, k + 1, cat_ids))
    if not images:
        raise BadDatasetError("the ground truth annotates no keypoints, so there is no keypoint AP")
    if not any(r.get("keypoints") for r in results):  # nothing detected: 0, as coco_evaluate says
        return {name: 0.0 for name in KEYPOINT_STAT_NAMES}
    gt_doc = {"images": images, "annotations": anns,
              "categories": [{"id": i, "name": n} for i, n in zip(cat_ids, cats)]}
    return keypoint_evaluate(gt_doc, results, sigmas)
