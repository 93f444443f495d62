"""Evaluate a *shipped* model through its adapter (what users get: half-precision weights, the
adapter's resizing and mask pasting) on freshly generated shapes-world scenes of unseen seeds.

Used to fill the metrics of the model cards and by the checkpoint tests (fewer scenes there).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segviewer.training.data import VAL_SEED, shapes_instance, shapes_semantic
from segviewer.training.metrics import coco_mask_ap, confusion, semantic_scores


def evaluate_adapter(adapter: Any, kind: str, n: int, offset: int = 0) -> dict[str, float]:
    """Metrics of a loaded adapter on scenes with seeds ``VAL_SEED + offset ... + n - 1``.

    ``kind``: "maskrcnn" (mask AP, AP50, AP75, box AP), "fcn" (mIoU of the 8s, 16s and 32s
    stages), "unet" (mIoU), "pcv" (mIoU and vote accuracy on thing pixels).
    """
    seeds = [VAL_SEED + offset + i for i in range(n)]
    if kind in ("centernet", "yolo"):  # boxes only: COCO box AP
        from segviewer.training.centernet_task import evaluate_adapter_boxes

        return evaluate_adapter_boxes(adapter, seeds)
    if kind in ("maskrcnn", "yolact"):  # instance masks: mask AP and box AP
        gts, preds = [], []
        for s in seeds:
            smp = shapes_instance(s)
            det = adapter.predict(smp.image)
            masks = det.masks.to_full() if det.masks is not None else np.zeros((0, *smp.image.shape[:2]), bool)
            preds.append((det.class_ids.astype(np.int64), det.scores, masks))
            gts.append((smp.labels, smp.masks))
        ncls = len(adapter.card.categories)
        ap = coco_mask_ap(gts, preds, ncls)
        box = coco_mask_ap(gts, preds, ncls, iou_type="bbox")
        return {"mask_ap": ap["ap"], "mask_ap50": ap["ap50"], "mask_ap75": ap["ap75"],
                "mask_ap_small": ap["ap_s"], "mask_ap_medium": ap["ap_m"], "mask_ap_large": ap["ap_l"],
                "box_ap": box["ap"], "box_ap50": box["ap50"]}
    ncls = len(adapter.card.categories)
    confs: dict[str, Any] = {}
    correct = total = 0
    for s in seeds:
        smp = shapes_semantic(s)
        if kind == "fcn":
            maps = adapter.predict_stages(smp.image)
        elif kind == "pcv":
            from segviewer.training import pcv_targets

            vp = adapter.predict_votes(smp.image)
            maps = {"out": vp.semantic}
            stride = int(round(vp.scale_x))
            t = pcv_targets.vote_targets(list(smp.instances), smp.labels.shape, stride, vp.cell_size)
            guess = vp.votes.argmax(0)[: t.shape[0], : t.shape[1]]
            thing = t < pcv_targets.NUM_CELLS
            correct += int((guess[thing] == t[thing]).sum())
            total += int(thing.sum())
        else:
            maps = {"out": adapter.predict(smp.image)}
        for k, m in maps.items():
            confs[k] = confs.get(k, 0) + confusion(smp.labels, m.labels, ncls)
    res: dict[str, float] = {}
    for k, c in confs.items():
        sc = semantic_scores(c)
        pre = "" if k in ("out", "8s") else f"{k}_"
        res[f"{pre}miou"] = sc["miou"]
        if not pre:
            res["pixel_acc"] = sc["pixel_acc"]
            res["fwiou"] = sc["fwiou"]
    if kind == "pcv":
        res["vote_acc"] = correct / max(total, 1)
    return res
