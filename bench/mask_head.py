"""The mask head's choices, measured: mask AP of the bundled shapes Mask R-CNN when its class
channels are read with the per-class sigmoid it was trained with (its own output) vs a softmax
across classes on the same logits, on unseen shapes-world scenes; and the cost of the Mask head
and Keypoints views' numbers and galleries per click.

Not the paper's ablation: Mask R-CNN's 30.3 vs 24.8 COCO mask AP compares two *trained* models
(binary vs multinomial loss). Here one sigmoid-trained model's logits are read both ways, which
shows how much its channels would fight if they had to compete, and nothing about a model
trained to compete.

    python bench/mask_head.py [--scenes 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine_line, pin_threads, table, time_ms  # noqa: E402


def ap_both_ways(n: int) -> tuple[dict[str, dict[str, float]], int, float]:
    """Mask AP (COCO, pycocotools) with each reading, over ``n`` unseen scenes."""
    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.one_pass import predict_with_internals
    from segviewer.adapters.registry import create_adapter
    from segviewer.analysis.mask_head import mask_head_choices
    from segviewer.training.data import VAL_SEED, shapes_instance
    from segviewer.training.metrics import coco_mask_ap

    adapter = create_adapter("shapes_maskrcnn")
    adapter.load("cpu")
    gts, sig, soft = [], [], []
    same = 0
    t0 = time.perf_counter()
    for i in range(n):
        smp = shapes_instance(VAL_SEED + i)
        h, w = smp.image.shape[:2]
        det, it = predict_with_internals(adapter, smp.image, PredictParams())
        full = det.masks.to_full() if det.masks is not None else np.zeros((0, h, w), bool)
        same += int(np.array_equal(it.masks(0.5).to_full(), full))  # our paste equals the model's
        labels = it.detections.groups.astype(np.int64)
        soft_masks = np.zeros((len(labels), h, w), bool)
        for k, cls in enumerate(labels):
            ch = mask_head_choices(it.mask_logits_all[k], int(cls))
            probs, (x0, y0) = it.paste_probs(k, ch.softmax[cls])
            soft_masks[k, y0: y0 + probs.shape[0], x0: x0 + probs.shape[1]] = probs > 0.5
        gts.append((smp.labels, smp.masks))
        sig.append((labels, det.scores, full))
        soft.append((labels, det.scores, soft_masks))
    ncls = len(adapter.card.categories)
    return ({"per-class sigmoid (the model's)": coco_mask_ap(gts, sig, ncls),
             "softmax across classes": coco_mask_ap(gts, soft, ncls)}, same, time.perf_counter() - t0)


def view_costs() -> list[tuple[str, float]]:
    """Median ms of what a click recomputes (numbers + galleries), shapes-sized and COCO-sized."""
    from segviewer.analysis.mask_head import heatmaps_to_keypoints, mask_head_choices, spatial_softmax
    from segviewer.render.mask_gallery import gallery_rgba

    rng = np.random.default_rng(0)
    rows = []
    for c, zoom in ((6, 3), (91, 2)):
        lg = rng.normal(0, 4, (c, 28, 28)).astype(np.float32)
        names = [f"class {k}" for k in range(1, c)]

        def mask_click(lg: np.ndarray = lg, names: list[str] = names, zoom: int = zoom) -> None:
            ch = mask_head_choices(lg, 1)
            gallery_rgba(ch.sigmoid[1:], names, 0, zoom=zoom)
            gallery_rgba(ch.softmax[1:], names, 0, zoom=zoom)
            ch.iou(), ch.other_class_cells()

        rows.append((f"Mask head click, {c - 1} class channels", float(np.median(time_ms(mask_click, 20)))))
    kl = rng.normal(0, 3, (17, 56, 56)).astype(np.float32)
    box = np.array([100, 50, 300, 450], np.float32)

    def kp_click() -> None:
        probs = spatial_softmax(kl)
        heatmaps_to_keypoints(kl, box)
        gallery_rgba(probs, [f"kp {i}" for i in range(17)], 0, None, None, zoom=1, columns=4,
                     marks=np.zeros((17, 2)))

    rows.append(("Keypoints click, 17 maps, 200 x 400 px box", float(np.median(time_ms(kp_click, 20)))))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=200)
    args = ap.parse_args()
    pin_threads(1)
    print(machine_line())
    print(table([(name, f"{ms:.1f}") for name, ms in view_costs()], ["per click (numpy, no Qt)", "median ms"]))
    res, same, secs = ap_both_ways(args.scenes)
    print(f"\nshapes_maskrcnn on {args.scenes} unseen scenes ({secs:.0f} s; our paste equals the model's masks "
          f"on {same}/{args.scenes}):")
    rows = [(name, 100 * r["ap"], 100 * r["ap50"], 100 * r["ap75"]) for name, r in res.items()]
    print(table([(n, f"{a:.1f}", f"{b:.1f}", f"{c:.1f}") for n, a, b, c in rows],
                ["reading of the class channels", "mask AP", "AP50", "AP75"]))


if __name__ == "__main__":
    main()
