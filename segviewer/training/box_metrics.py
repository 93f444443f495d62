"""COCO box AP of detectors that give boxes (no masks), via pycocotools' COCOeval (``bbox``)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

KEYS = ("ap", "ap50", "ap75", "ap_s", "ap_m", "ap_l")


def coco_box_ap(gts: Sequence[tuple[np.ndarray, np.ndarray]],
                preds: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                num_classes: int, size: tuple[int, int] = (256, 256)) -> dict[str, float]:
    """``gts[i] = (labels (N,), boxes (N, 4) xyxy)``, ``preds[i] = (labels, scores, boxes)``;
    labels 1-based (``1 .. num_classes - 1``). Areas of ground truth are box areas (COCO uses mask
    areas for its size buckets; only ``ap_s/m/l`` depend on it). Returns :data:`KEYS`."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    aid = 1

    def xywh(b: np.ndarray) -> list[float]:
        x0, y0, x1, y1 = (float(v) for v in b)
        return [x0, y0, x1 - x0, y1 - y0]

    for img_id, ((gl, gb), (pl, ps, pb)) in enumerate(zip(gts, preds), start=1):
        images.append({"id": img_id, "height": int(size[0]), "width": int(size[1])})
        for lab, b in zip(gl, np.asarray(gb).reshape(-1, 4)):
            bb = xywh(b)
            anns.append({"id": aid, "image_id": img_id, "category_id": int(lab), "bbox": bb,
                         "area": bb[2] * bb[3], "iscrowd": 0})
            aid += 1
        for lab, s, b in zip(pl, ps, np.asarray(pb).reshape(-1, 4)):
            dets.append({"image_id": img_id, "category_id": int(lab), "bbox": xywh(b), "score": float(s)})
    if not anns:
        return dict.fromkeys(KEYS, float("nan"))
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": i, "name": str(i)} for i in range(1, num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        if not dets:
            return dict.fromkeys(KEYS, 0.0)
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(v) for k, v in zip(KEYS, ev.stats[:6])}
