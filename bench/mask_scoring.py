"""Mask Scoring R-CNN vs Mask R-CNN on the shapes world: mask AP (pycocotools) with each scoring
rule side by side, and how well each rule's score tracks the mask's real IoU (Pearson), on
unseen scenes (validation seeds). One forward pass per scene gives both rules; the MaskIoU
head's own cost per image is reported beside the Mask R-CNN pass.

The paper's claim (COCO, ResNet-101: about +1.5 mask AP) is that scoring a mask by its predicted
quality raises AP; this prints what the shapes world gives, whatever it is.

    python bench/mask_scoring.py [--scenes 200] [--maskiou FILE] [--json OUT] [--scatter PNG]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine_line, pin_threads, table  # noqa: E402


def load_head(adapter, path: Path) -> None:  # noqa: ANN001
    """Swap in a MaskIoU head file (a candidate before it ships)."""
    from segviewer.adapters.nets import checkpoint
    from segviewer.adapters.nets.maskiou import build_maskiou

    ck = checkpoint.load(path)
    head = build_maskiou(dict(ck["config"]))
    checkpoint.load_weights(head, ck["state_dict"], path.name)
    adapter.head = head.float().eval()


def scatter_png(arr: dict[str, np.ndarray], out: Path) -> None:
    """Score vs real IoU for both rules, side by side (cv2 drawing: no plotting library needed)."""
    import cv2

    size, pad = 360, 40
    pic = np.full((size + 2 * pad, 2 * (size + 2 * pad), 3), 255, np.uint8)
    for k, (rule, col) in enumerate((("box", (40, 150, 255)), ("mask", (255, 200, 60)))):
        ox = k * (size + 2 * pad) + pad
        cv2.rectangle(pic, (ox, pad), (ox + size, pad + size), (0, 0, 0), 1)
        cv2.line(pic, (ox, pad + size), (ox + size, pad), (180, 180, 180), 1)
        for x, y in zip(arr["real"], arr[rule]):
            cv2.circle(pic, (int(ox + x * size), int(pad + (1 - y) * size)), 2, col, -1)
        title = "box score (Mask R-CNN)" if rule == "box" else "box score x pred. IoU (MS R-CNN)"
        cv2.putText(pic, title, (ox, pad - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        cv2.putText(pic, "real mask IoU ->", (ox + size - 130, pad + size + 25), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1)
    cv2.imwrite(str(out), pic)


def head_cost(adapter, n: int = 20) -> tuple[float, float]:  # noqa: ANN001
    """Median ms of the Mask R-CNN's stage and of the MaskIoU head's, from the pass's own timings."""
    from segviewer.core.timing import Timings
    from segviewer.training.data import VAL_SEED, shapes_instance

    model, head = [], []
    for i in range(n):
        tm = Timings()
        adapter.predict_scored(shapes_instance(VAL_SEED + i).image, timings=tm)
        model.append(1000 * tm.get("model", 0.0))
        head.append(1000 * tm.get("maskiou", 0.0))
    return float(np.median(model)), float(np.median(head))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=200)
    ap.add_argument("--maskiou", type=Path, default=None, help="a MaskIoU head file instead of the card's")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--scatter", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    pin_threads(a.threads)
    from segviewer.adapters.registry import create_adapter
    from segviewer.training.maskiou_task import evaluate_scoring

    adapter = create_adapter("shapes_msrcnn")
    adapter.load("cpu")
    if a.maskiou is not None:
        load_head(adapter, a.maskiou)
    res = evaluate_scoring(adapter, a.scenes)
    arr = res.pop("arrays")
    print(machine_line())
    print(f"{res['scenes']} unseen scenes (seeds 10000000..), {res['detections']} detections, {res['seconds']} s")
    rows = [["box score (Mask R-CNN)", res["mask_ap_box_score"], res["mask_ap50_box_score"],
             res["mask_ap75_box_score"], res["pearson_box_score_real_iou"]],
            ["box x predicted IoU (Mask Scoring)", res["mask_ap_mask_score"], res["mask_ap50_mask_score"],
             res["mask_ap75_mask_score"], res["pearson_mask_score_real_iou"]],
            ["predicted IoU alone", "", "", "", res["pearson_pred_iou_real_iou"]]]
    print(table(rows, ["scoring rule", "mask AP", "AP50", "AP75", "Pearson r with real IoU"]))
    print(f"MaskIoU head: mean L2 to the real IoU {res['l2_pred_iou_real_iou']:.4f}; "
          f"mean real IoU {float(arr['real'].mean()):.3f}, mean predicted {float(arr['iou'].mean()):.3f}")
    model_ms, head_ms = head_cost(adapter)
    print(f"per image (median of 20 scenes): Mask R-CNN pass {model_ms:.1f} ms, MaskIoU head {head_ms:.1f} ms "
          "on the same RoI features")
    res["ms_model"], res["ms_maskiou"] = model_ms, head_ms
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    if a.scatter:
        scatter_png(arr, a.scatter)


if __name__ == "__main__":
    main()
