"""Metrics the trainers and the checkpoint tests report (numpy + pycocotools, no torch).

Semantic metrics follow the FCN paper's definitions (REFERENCE.md); mask AP is COCO's
AP@[.5:.95] computed by pycocotools' COCOeval, so our numbers mean what COCO's mean.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np


def confusion(gt: np.ndarray, pred: np.ndarray, n: int, ignore: int = 255) -> np.ndarray:
    """``(n, n)`` int64 counts ``n_ij`` of pixels of class i predicted as j (``ignore`` left out)."""
    g = np.asarray(gt).ravel().astype(np.int64)
    p = np.asarray(pred).ravel().astype(np.int64)
    keep = g != ignore
    g, p = g[keep], p[keep]
    if g.size and (g.max() >= n or p.min() < 0 or p.max() >= n):
        raise ValueError(f"labels must lie in [0, {n})")
    return np.bincount(g * n + p, minlength=n * n).reshape(n, n)


def semantic_scores(conf: np.ndarray) -> dict[str, float]:
    """Pixel accuracy, mean accuracy, mean IoU and frequency-weighted IoU from a confusion matrix.

    Classes absent from both ground truth and prediction are left out of the means.
    """
    c = conf.astype(np.float64)
    tp = np.diag(c)
    t = c.sum(axis=1)
    union = t + c.sum(axis=0) - tp
    present = union > 0
    iou = np.where(present, tp / np.maximum(union, 1), np.nan)
    acc = np.where(t > 0, tp / np.maximum(t, 1), np.nan)
    return {
        "pixel_acc": float(tp.sum() / max(t.sum(), 1)),
        "mean_acc": float(np.nanmean(acc)),
        "miou": float(np.nanmean(iou[present])),
        "fwiou": float((t[present] * iou[present]).sum() / max(t.sum(), 1)),
    }


def per_class_iou(conf: np.ndarray) -> np.ndarray:
    c = conf.astype(np.float64)
    tp = np.diag(c)
    union = c.sum(axis=1) + c.sum(axis=0) - tp
    return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def coco_mask_ap(gts: Sequence[tuple[np.ndarray, np.ndarray]],
                 preds: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                 num_classes: int, iou_type: str = "segm") -> dict[str, float]:
    """COCO AP of instance masks (or boxes with ``iou_type="bbox"``) via pycocotools.

    ``gts[i] = (labels (N,), masks (N, H, W) bool)``; ``preds[i] = (labels, scores, masks)``.
    Labels are 1-based detection labels. Returns ``ap``, ``ap50``, ``ap75``, ``ap_s/m/l``.
    """
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    aid = 1
    for img_id, ((gl, gm), (pl, ps, pm)) in enumerate(zip(gts, preds), start=1):
        h, w = gm.shape[1:] if len(gm) else pm.shape[1:]
        images.append({"id": img_id, "height": int(h), "width": int(w)})
        for lab, m in zip(gl, gm):
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            area = float(mask_utils.area(rle))
            bbox = mask_utils.toBbox(rle).tolist()
            rle["counts"] = rle["counts"].decode("ascii")
            anns.append({"id": aid, "image_id": img_id, "category_id": int(lab), "segmentation": rle,
                         "area": area, "bbox": bbox, "iscrowd": 0})
            aid += 1
        for lab, s, m in zip(pl, ps, pm):
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            bbox = mask_utils.toBbox(rle).tolist()
            rle["counts"] = rle["counts"].decode("ascii")
            dets.append({"image_id": img_id, "category_id": int(lab), "segmentation": rle,
                         "bbox": bbox, "score": float(s)})
    keys = ("ap", "ap50", "ap75", "ap_s", "ap_m", "ap_l")
    if not anns:
        return dict.fromkeys(keys, float("nan"))
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": i, "name": str(i)} for i in range(1, num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        if not dets:
            return dict.fromkeys(keys, 0.0)
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(v) for k, v in zip(keys, ev.stats[:6])}
