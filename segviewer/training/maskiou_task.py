"""Training Mask Scoring R-CNN's MaskIoU head on the FROZEN bundled shapes Mask R-CNN.

Two steps, both time-budgeted (the machine is shared):

1. ``gather``: run the frozen Mask R-CNN (through its adapter: the resize, thresholds and mask
   pasting users get) on training scenes (``train_seeds(seed)``, never the validation seeds);
   for each detection keep the mask head's RoI features (14 x 14, float16), its class's 28 x 28
   mask probabilities, the class, and the target: the real IoU of its binarised pasted mask with
   the best ground-truth mask of its class (0 when none). Saved as ``.npz`` chunks.
2. ``train``: the MaskIoU head on the cached tuples, L2 loss on the detection's class output
   (the paper's loss), Adam with a cosine schedule over the time budget; writes ``model.pt``
   (float16 weights) in the segviewer checkpoint format.

``python -m segviewer.training.maskiou_task gather --out runs/maskiou --scenes 800 --minutes 30``
``python -m segviewer.training.maskiou_task train --cache runs/maskiou --out runs/maskiou/model.pt --minutes 10``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.training.data import shapes_instance, train_seeds


def gather(out: Path, scenes: int, minutes: float, seed: int = 0, start: int = 0, chunk: int = 100,
           model: str = "shapes_maskrcnn") -> dict[str, Any]:
    """Cache (features, mask probs, label, real IoU) of the frozen model's detections on
    ``scenes`` training scenes from position ``start`` of run ``seed``'s stream."""
    import torch

    from segviewer.adapters.mask_scoring import MaskScoringHooks
    from segviewer.adapters.registry import create_adapter, get_card
    from segviewer.analysis.mask_scoring import real_ious

    out.mkdir(parents=True, exist_ok=True)
    adapter = create_adapter(get_card(model))
    adapter.load("cpu")
    heads = adapter.module.roi_heads
    t0 = time.monotonic()
    buf: dict[str, list[np.ndarray]] = {"features": [], "masks": [], "labels": [], "targets": [], "scores": []}
    done = part = 0

    def flush() -> None:
        nonlocal part
        if not buf["labels"]:
            return
        np.savez(out / f"chunk_{start:07d}_{part:04d}.npz", **{k: np.concatenate(v) for k, v in buf.items()})
        part += 1
        for v in buf.values():
            v.clear()

    for i, s in enumerate(train_seeds(seed, start)):
        if i >= scenes or time.monotonic() - t0 > 60 * minutes:
            break
        smp = shapes_instance(s)
        with MaskScoringHooks(heads) as got:
            det = adapter.predict(smp.image)
        n = len(det.class_ids)
        if n:
            masks = det.masks.to_full()
            lab = torch.as_tensor(det.class_ids.astype(np.int64))
            probs = torch.sigmoid(got["logits"][torch.arange(n), lab].float())
            buf["features"].append(got["features"].to(torch.float16).numpy())
            buf["masks"].append(probs.to(torch.float16).numpy())
            buf["labels"].append(det.class_ids.astype(np.int64))
            buf["targets"].append(real_ious(det.class_ids, masks, smp.labels, smp.masks))
            buf["scores"].append(det.scores.astype(np.float32))
        done += 1
        if done % chunk == 0:
            flush()
            print(f"{done} scenes, {time.monotonic() - t0:.0f} s", flush=True)
    flush()
    info = {"seed": seed, "start": start, "scenes": done, "seconds": round(time.monotonic() - t0, 1)}
    (out / f"gather_{start:07d}.json").write_text(json.dumps(info))
    return info


def load_cache(folder: Path) -> dict[str, np.ndarray]:
    parts = [np.load(p) for p in sorted(Path(folder).glob("chunk_*.npz"))]
    if not parts:
        raise FileNotFoundError(f"no chunk_*.npz in {folder}")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0].files}


def train(cache: Path, out: Path, minutes: float, seed: int = 0, batch: int = 64, lr: float = 1e-3,
          config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit the MaskIoU head on the cached detections (L2 on the predicted class's output)."""
    import torch

    from segviewer.adapters.nets.maskiou import DEFAULT_CONFIG, build_maskiou
    from segviewer.training.checkpoint import FORMAT, half_state, save

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = load_cache(cache)
    feats = torch.from_numpy(data["features"])
    masks = torch.from_numpy(data["masks"])
    labels = torch.from_numpy(data["labels"].astype(np.int64))
    targets = torch.from_numpy(data["targets"].astype(np.float32))
    n = len(labels)
    cfg = {**DEFAULT_CONFIG, **(config or {}), "in_channels": int(feats.shape[1])}
    head = build_maskiou(cfg)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    budget = 60.0 * minutes
    t0 = time.monotonic()
    step, losses = 0, []
    while True:
        el = time.monotonic() - t0
        if el > budget:
            break
        for g in opt.param_groups:  # cosine over the time budget
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * min(el / budget, 1.0)))
        idx = torch.from_numpy(rng.integers(0, n, batch))
        x, m, lab, t = feats[idx].float(), masks[idx].float(), labels[idx], targets[idx]
        out_ = head(x, m)[torch.arange(len(idx)), lab]
        loss = torch.nn.functional.mse_loss(out_, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % 200 == 0:
            print(f"step {step} loss {np.mean(losses[-200:]):.4f} {el:.0f} s", flush=True)
    head.eval()
    with torch.inference_mode():
        pred = torch.cat([head.predict_iou(feats[i:i + 512].float(), masks[i:i + 512].float(), labels[i:i + 512])
                          for i in range(0, n, 512)]).numpy()
    tgt = targets.numpy()
    info = {"steps": step, "batch": batch, "samples": int(n), "seconds": round(time.monotonic() - t0, 1),
            "train_l2": float(np.mean((pred - tgt) ** 2)), "train_pearson": float(np.corrcoef(pred, tgt)[0, 1]),
            "last_loss": float(np.mean(losses[-200:])) if losses else float("nan")}
    payload = {"format": FORMAT, "model": "maskiou", "categories": ["__background__", "circle", "square", "triangle",
                                                                    "star", "ring"][: cfg["num_classes"]],
               "config": cfg, "state_dict": half_state(head.state_dict()), "step": step, "seed": seed,
               "metrics": info}
    out.parent.mkdir(parents=True, exist_ok=True)
    save(out, payload)
    print(json.dumps(info), flush=True)
    return info


def evaluate_scoring(adapter: Any, n: int = 200, offset: int = 0) -> dict[str, Any]:
    """Both scoring rules of a loaded :class:`~segviewer.adapters.mask_scoring.ShapesMaskScoring`
    on the unseen scenes ``VAL_SEED + offset ...``: mask AP (pycocotools) with each rule, and per
    detection its box score, predicted IoU, Mask Scoring score and real mask IoU (with their
    Pearson correlations). One forward pass per scene gives both rules."""
    from segviewer.analysis.mask_scoring import pearson, real_ious
    from segviewer.training.data import VAL_SEED
    from segviewer.training.metrics import coco_mask_ap

    gts, by_box, by_mask = [], [], []
    cols: dict[str, list[np.ndarray]] = {"box": [], "iou": [], "mask": [], "real": []}
    t0 = time.monotonic()
    for i in range(n):
        smp = shapes_instance(VAL_SEED + offset + i)
        det, ms = adapter.predict_scored(smp.image)
        full = det.masks.to_full() if det.masks is not None else np.zeros((0, *smp.image.shape[:2]), bool)
        lab = det.class_ids.astype(np.int64)
        gts.append((smp.labels, smp.masks))
        by_box.append((lab, ms.scores("box"), full))
        by_mask.append((lab, ms.scores("mask"), full))
        cols["box"].append(ms.box_scores)
        cols["iou"].append(ms.mask_iou)
        cols["mask"].append(ms.mask_scores)
        cols["real"].append(real_ious(lab, full, smp.labels, smp.masks))
    arr = {k: np.concatenate(v) if v else np.zeros(0, np.float32) for k, v in cols.items()}
    ncls = len(adapter.card.categories)
    ap_box, ap_mask = coco_mask_ap(gts, by_box, ncls), coco_mask_ap(gts, by_mask, ncls)
    return {
        "scenes": n, "detections": int(len(arr["real"])), "seconds": round(time.monotonic() - t0, 1),
        "mask_ap_box_score": ap_box["ap"], "mask_ap50_box_score": ap_box["ap50"], "mask_ap75_box_score": ap_box["ap75"],
        "mask_ap_mask_score": ap_mask["ap"], "mask_ap50_mask_score": ap_mask["ap50"],
        "mask_ap75_mask_score": ap_mask["ap75"],
        "pearson_box_score_real_iou": pearson(arr["box"], arr["real"]),
        "pearson_mask_score_real_iou": pearson(arr["mask"], arr["real"]),
        "pearson_pred_iou_real_iou": pearson(arr["iou"], arr["real"]),
        "l2_pred_iou_real_iou": float(np.mean((arr["iou"] - arr["real"]) ** 2)) if len(arr["real"]) else float("nan"),
        "arrays": arr,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gather")
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--scenes", type=int, default=800)
    g.add_argument("--minutes", type=float, default=30.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--start", type=int, default=0)
    g.add_argument("--threads", type=int, default=1)
    t = sub.add_parser("train")
    t.add_argument("--cache", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--minutes", type=float, default=10.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    if a.cmd == "gather":
        print(json.dumps(gather(a.out, a.scenes, a.minutes, a.seed, a.start)))
    else:
        train(a.cache, a.out, a.minutes, a.seed, a.batch, a.lr)


if __name__ == "__main__":
    main()
