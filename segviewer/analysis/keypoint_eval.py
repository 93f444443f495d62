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

__all__ = ["KEYPOINT_STAT_NAMES", "has_keypoint_annotations", "keypoint_results", "keypoint_evaluate"]

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
        if "num_keypoints" not in a and a.get("keypoints"):
            a["num_keypoints"] = int(sum(1 for v in a["keypoints"][2::3] if float(v) > 0))
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
