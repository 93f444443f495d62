"""CenterNet's training: targets (Gaussian-splatted centres), the paper's losses, evaluation.

Targets (Zhou et al., "Objects as Points", and CornerNet's radius): each box's centre in output
cells ``c = centre / stride``, its cell ``p = floor(c)``; the class heatmap gets a Gaussian at
``p`` with ``sigma = (2r + 1) / 6`` where ``r`` is the radius at which a box shifted by it still
overlaps the truth by ``min_overlap`` (0.7); overlapping Gaussians of one class keep the maximum.
The offset target at ``p`` is ``c - p`` and the size target ``(w, h) / stride``.

Loss = penalty-reduced pixel-wise focal loss (alpha 2, beta 4, normalised by the object count)
+ L1 offset + ``size_weight`` x L1 size, both L1 terms at the centre cells only. The paper's size
term is L1 on sizes in cells x 0.1; with the net's ``log_size`` (default) it is L1 on log sizes
x 1.0, which a short CPU training learns much faster (a first run with the paper's term had a
size error of 3.3 cells per side after 200 steps and box AP 0.04).

Run it before the task table knows it with ``python -m segviewer.training.centernet_task`` (the
same seeds, batches and checkpoint as ``segviewer train``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segviewer.adapters.nets.registry import to_tensor
from segviewer.analysis import centernet as dec
from segviewer.training.data import InstanceSample, shapes_instance

DEFAULTS: dict[str, Any] = {"batch_size": 8, "lr": 2e-3, "weight_decay": 1e-4, "warmup": 100, "steps": 6000}
#: Loss options (stored in the checkpoint's config beside the architecture's, as the registry's
#: ``extra`` for this family spells them out).
LOSS_DEFAULTS: dict[str, Any] = {"size_weight": 1.0, "offset_weight": 1.0, "min_overlap": 0.7}


def gaussian_radius(h: float, w: float, min_overlap: float = 0.7) -> float:
    """CornerNet's radius (as in CenterNet's code): the smallest of the three corner-shift cases."""
    a1, b1, c1 = 1.0, h + w, w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2, c2 = 4.0, 2 * (h + w), (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def splat(heat: np.ndarray, cy: int, cx: int, radius: int) -> None:
    """Max-splat a Gaussian of ``sigma = (2 radius + 1) / 6`` centred on cell ``(cy, cx)`` (peak 1)."""
    d = 2 * radius + 1
    sigma = d / 6
    yy, xx = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    g = np.exp(-(xx * xx + yy * yy) / (2 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    h, w = heat.shape
    top, bot = min(cy, radius), min(h - cy, radius + 1)
    lef, rig = min(cx, radius), min(w - cx, radius + 1)
    region = heat[cy - top:cy + bot, cx - lef:cx + rig]
    np.maximum(region, g[radius - top:radius + bot, radius - lef:radius + rig], out=region)


@dataclass
class Targets:
    heat: np.ndarray  # (C, H, W) float32
    ys: np.ndarray  # (N,) centre cells
    xs: np.ndarray
    offset: np.ndarray  # (N, 2) dx, dy
    size: np.ndarray  # (N, 2) w, h in cells


def make_targets(boxes: np.ndarray, labels: np.ndarray, num_classes: int, out_hw: tuple[int, int],
                 stride: int, min_overlap: float = 0.7) -> Targets:
    """Targets of one image; ``labels`` are 1-based (heatmap channel = label - 1)."""
    h, w = out_hw
    heat = np.zeros((num_classes, h, w), np.float32)
    b = np.asarray(boxes, np.float64).reshape(-1, 4) / stride
    c = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)
    p = np.floor(c).astype(np.int64)
    p[:, 0] = np.clip(p[:, 0], 0, w - 1)
    p[:, 1] = np.clip(p[:, 1], 0, h - 1)
    wh = np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
    for (px, py), (bw, bh), lab in zip(p, wh, labels):
        r = max(0, int(gaussian_radius(math.ceil(bh), math.ceil(bw), min_overlap)))
        splat(heat[int(lab) - 1], int(py), int(px), r)
    return Targets(heat, p[:, 1], p[:, 0], (c - p).astype(np.float32), wh.astype(np.float32))


def focal_loss(logits: torch.Tensor, gt: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """The paper's penalty-reduced pixel-wise focal loss, summed and divided by the object count."""
    pos = gt.eq(1).float()
    logp, log1mp = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    pos_l = (logp * (1 - p) ** alpha * pos).sum()
    neg_l = (log1mp * p ** alpha * (1 - gt) ** beta * (1 - pos)).sum()
    return -(pos_l + neg_l) / pos.sum().clamp(min=1)


def coco_box_ap(gts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                preds: list[tuple[np.ndarray, np.ndarray, np.ndarray]], num_classes: int) -> dict[str, float]:
    """COCO box AP via pycocotools. ``gts[i] = (labels, boxes xyxy, areas)`` (area = the mask's
    pixel count, as COCO's annotations; it only picks the small/medium/large bucket),
    ``preds[i] = (labels, scores, boxes xyxy)``; labels 1-based."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for img_id, ((gl, gb, ga), (pl, ps, pb)) in enumerate(zip(gts, preds), start=1):
        images.append({"id": img_id})
        for lab, b, a in zip(gl, gb, ga):
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": int(lab), "iscrowd": 0,
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])], "area": float(a)})
        for lab, s, b in zip(pl, ps, pb):
            dets.append({"image_id": img_id, "category_id": int(lab), "score": float(s),
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
    keys = ("ap", "ap50", "ap75", "ap_s", "ap_m", "ap_l")
    if not anns:
        return dict.fromkeys(keys, float("nan"))
    if not dets:
        return dict.fromkeys(keys, 0.0)
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": i, "name": str(i)} for i in range(1, num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(v) for k, v in zip(keys, ev.stats[:6])}


@dataclass
class CenterNetTask:
    """Heatmap focal loss + offset L1 + 0.1 x size L1; evaluation = box AP of the top-100 peaks.

    The loop's task interface (:class:`segviewer.training.tasks.Task`) by shape, not by
    inheritance, so ``tasks`` can list this class without an import cycle."""

    categories: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    kind: str = "instance"
    name: str = "centernet"

    def build(self) -> nn.Module:
        from segviewer.adapters.nets.centernet import build_centernet

        return build_centernet({**self.config, "num_classes": len(self.categories) - 1})

    def _cfg(self, key: str) -> Any:
        return self.config.get(key, LOSS_DEFAULTS[key])

    def loss(self, model, samples: list[InstanceSample], device):
        x = to_tensor([s.image for s in samples]).to(device)
        out = model(x)
        stride = int(self.config.get("stride", 4))
        hw = tuple(out["heatmap"].shape[-2:])
        tg = [make_targets(s.boxes, s.labels, out["heatmap"].shape[1], hw, stride, self._cfg("min_overlap"))
              for s in samples]
        heat = torch.from_numpy(np.stack([t.heat for t in tg])).to(device)
        l_heat = focal_loss(out["heatmap"], heat)
        bi = torch.from_numpy(np.concatenate([np.full(len(t.ys), i) for i, t in enumerate(tg)]).astype(np.int64))
        ys = torch.from_numpy(np.concatenate([t.ys for t in tg]).astype(np.int64))
        xs = torch.from_numpy(np.concatenate([t.xs for t in tg]).astype(np.int64))
        n = max(len(ys), 1)
        off_t = torch.from_numpy(np.concatenate([t.offset for t in tg]).reshape(-1, 2)).to(device)
        size_t = torch.from_numpy(np.concatenate([t.size for t in tg]).reshape(-1, 2)).to(device)
        off_p = out["offset"][bi, :, ys, xs]  # (N, 2)
        size_p = out["size"][bi, :, ys, xs]
        l_off = (off_p - off_t).abs().sum() / n
        if self.config.get("log_size", True):  # L1 of log sizes: scale-free (see the net's docstring)
            l_size = (torch.log(size_p) - torch.log(size_t.clamp(min=1e-3))).abs().sum() / n
        else:  # the paper's L1 on sizes in cells (its weight 0.1)
            l_size = (size_p - size_t).abs().sum() / n
        total = l_heat + self._cfg("offset_weight") * l_off + self._cfg("size_weight") * l_size
        return total, {"heat": float(l_heat.detach()), "offset": float(l_off.detach()), "size": float(l_size.detach())}

    @torch.no_grad()
    def evaluate(self, model, samples: list[InstanceSample], device):
        stride = int(self.config.get("stride", 4))
        gts, preds = [], []
        for i in range(0, len(samples), 4):
            chunk = samples[i:i + 4]
            out = {k: v.float().cpu().numpy() for k, v in model(to_tensor([s.image for s in chunk]).to(device)).items()}
            for j, s in enumerate(chunk):
                d = dec.decode(out["heatmap"][j], out["offset"][j], out["size"][j], stride)
                preds.append((d.cls + 1, d.scores, d.boxes))
                gts.append((s.labels, s.boxes, s.masks.reshape(len(s.masks), -1).sum(1)))
        box = coco_box_ap(gts, preds, len(self.categories))
        return {"box_ap": box["ap"], "box_ap50": box["ap50"], "box_ap75": box["ap75"],
                "box_ap_small": box["ap_s"], "box_ap_medium": box["ap_m"], "box_ap_large": box["ap_l"]}


def evaluate_adapter_boxes(adapter: Any, seeds: list[int]) -> dict[str, float]:
    """Box AP of a loaded detector adapter (boxes only, e.g. the bundled CenterNet) on the
    shapes-world scenes ``seeds``, through its ``predict`` (what users get)."""
    gts, preds = [], []
    for seed in seeds:
        smp = shapes_instance(seed)
        det = adapter.predict(smp.image)
        preds.append((det.class_ids.astype(np.int64), det.scores, det.boxes))
        gts.append((smp.labels, smp.boxes, smp.masks.reshape(len(smp.masks), -1).sum(1)))
    box = coco_box_ap(gts, preds, len(adapter.card.categories))
    return {"box_ap": box["ap"], "box_ap50": box["ap50"], "box_ap75": box["ap75"],
            "box_ap_small": box["ap_s"], "box_ap_medium": box["ap_m"], "box_ap_large": box["ap_l"]}


def main(argv: list[str] | None = None) -> int:
    """``segviewer train``'s shapes-world path for CenterNet (same seeds, batches, checkpoint)."""
    import argparse
    import shlex
    import sys
    from pathlib import Path

    from segviewer.synth.classes import DETECTION_CATEGORIES
    from segviewer.training import data as D
    from segviewer.training.loop import LoopConfig, Trainer

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=DEFAULTS["steps"])
    ap.add_argument("--minutes", type=float)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    ap.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    ap.add_argument("--warmup", type=int, default=DEFAULTS["warmup"])
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="architecture or loss option, e.g. log_size=false size_weight=0.1 (the paper's size term)")
    ap.add_argument("--init", type=Path, help="start from this checkpoint's weights (fresh optimizer and "
                    "schedule); a size head trained without log_size is reset")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    bs = a.batch_size
    list(zip(range(1), D.train_seeds(a.seed)))  # validates the seed range

    def next_batch(step: int) -> list:
        base = a.seed * D.TRAIN_SEEDS_PER_RUN + step * bs
        return [D.shapes_instance(base + j) for j in range(bs)]

    val = [D.shapes_instance(s) for s in D.val_seeds(a.val)]
    from segviewer.adapters.nets.centernet import DEFAULT_CONFIG
    from segviewer.commands.train import _parse_sets

    task = CenterNetTask(list(DETECTION_CATEGORIES), {**DEFAULT_CONFIG, **LOSS_DEFAULTS, **_parse_sets(a.set)},
                         "instance", "centernet")
    cfg = LoopConfig(steps=a.steps, batch_size=bs, lr=a.lr, weight_decay=DEFAULTS["weight_decay"],
                     warmup=a.warmup, seed=a.seed, ckpt_every=a.ckpt_every, max_minutes=a.minutes,
                     extra={"data": "shapes", "command": "python -m segviewer.training.centernet_task "
                            + shlex.join(sys.argv[1:] if argv is None else argv)})
    tr = Trainer(task, cfg, a.out, next_batch, val)
    if a.resume and tr.resume():
        print(f"resuming at step {tr.step}", file=sys.stderr)
    elif a.init is not None:
        from segviewer.adapters.nets import checkpoint

        tr.init_from(a.init)
        if not checkpoint.load(a.init).get("config", {}).get("log_size", False) and tr.model.log_size:
            tr.model.reset_size_head()  # its output meant w, h; now it means log w, log h
            tr.cfg.extra["init_note"] = "size head's last layer reset (the init checkpoint predicted raw sizes)"
    status = tr.run()
    for k, v in tr.metrics.items():
        print(f"{k} {v:.4f}")
    print(f"centernet: {status} at step {tr.step}; wrote {a.out}", file=sys.stderr)
    return 130 if status == "interrupted" else 0


if __name__ == "__main__":
    raise SystemExit(main())
