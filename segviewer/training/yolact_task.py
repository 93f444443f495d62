"""Training YOLACT's mask branch (prototypes + coefficients) on the bundled YOLO detector.

The loss is YOLACT's mask loss: for every positive predictor, the assembled logits ``P c`` at
prototype resolution, binary cross entropy against the ground-truth mask (area-averaged down to the
prototypes' stride), counted only inside the ground-truth box (YOLACT crops with the true box while
training) and divided by the box's area in prototype pixels; averaged over positives.

Positives are YOLACT's rule on our grid: every predictor whose decoded box overlaps a ground-truth
box by IoU > 0.5 (its mask target is that box's object), plus the predictor responsible for each
object (YOLO's assignment, so no object goes without one). With ``freeze_detector`` (the default)
only the mask branch learns and the boxes stay exactly those of the detector it starts from
(``--set detector=models/shapes_yolo.pt``); without it YOLO's own loss is added.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from segviewer.adapters.nets.registry import to_tensor
from segviewer.analysis import yolact as A
from segviewer.analysis import yolo as Y
from segviewer.core.results import MaskSet
from segviewer.training.centernet_task import coco_box_ap
from segviewer.training.data import InstanceSample
from segviewer.training.yolo_task import YoloTask, _box_iou, decode_torch

POSITIVE_IOU = 0.5


def load_detector(model: torch.nn.Module, path: Path) -> None:
    """The YOLO part's weights from a ``shapes_yolo`` checkpoint (the mask branch stays as built)."""
    from segviewer.adapters.nets import checkpoint

    ck = checkpoint.load(Path(path))
    if ck.get("model") != "yolo":
        raise ValueError(f"{Path(path).name} holds a {ck.get('model')!r} model, not a YOLO detector")
    sd = {k: v.float() for k, v in ck["state_dict"].items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    foreign = [k for k in missing if not k.startswith(("proto_", "coef."))]
    if foreign or unexpected:
        raise ValueError(f"{Path(path).name} does not fit this YOLACT's detector "
                         f"(missing {foreign[:3]}, unexpected {list(unexpected)[:3]})")


def mask_targets(masks: np.ndarray, stride: int) -> np.ndarray:
    """``(N, H/s, W/s)`` float32: each mask's share of every ``s x s`` cell (area average)."""
    n, h, w = masks.shape
    return masks.reshape(n, h // stride, stride, w // stride, stride).mean(axis=(2, 4), dtype=np.float32)


def positives(boxes_pred: torch.Tensor, gt: torch.Tensor, a: Y.Assignment) -> tuple[torch.Tensor, ...]:
    """``(row, col, prior, object)`` of the positive predictors of one image: decoded box IoU > 0.5
    with an object (that object), plus each object's responsible predictor."""
    sh, sw, nb, _ = boxes_pred.shape
    iou = _box_iou(boxes_pred[..., None, :], gt.view(1, 1, 1, -1, 4))  # (S_h, S_w, B, M)
    best, obj = iou.max(-1)
    pos = best > POSITIVE_IOU
    dev = gt.device
    first = a.taken_by < 0
    r, c, b = (torch.from_numpy(v[first]).to(dev) for v in (a.row, a.col, a.prior))
    pos[r, c, b] = True
    obj[r, c, b] = torch.from_numpy(np.flatnonzero(first)).to(dev)
    rr, cc, bb = torch.nonzero(pos, as_tuple=True)
    return rr, cc, bb, obj[rr, cc, bb]


@dataclass
class YolactTask(YoloTask):
    """YOLACT on the shapes world's instance samples (boxes, labels and masks)."""

    name: str = "yolact"

    def build(self) -> torch.nn.Module:
        from segviewer.adapters.nets.registry import build

        model = build("yolact", self.categories, self.config)
        det = self.config.get("detector")
        if det:
            load_detector(model, Path(det))
        return model

    def loss(self, model, samples: list[InstanceSample], device):
        x = to_tensor([s.image for s in samples]).to(device)
        outs = model(x)
        out, coef, proto = outs["out"], outs["coef"], outs["proto"]
        n, _, sh, sw = out.shape
        pri_np = self.priors()
        nb, k = len(pri_np), int(model.num_prototypes)
        stride, ps = int(model.stride), x.shape[-1] // proto.shape[-1]
        with torch.no_grad():
            boxes, _ = decode_torch(out.detach(), torch.from_numpy(pri_np).to(device), stride)
        coef = coef.view(n, nb, k, sh, sw)
        ph, pw = proto.shape[-2:]
        centres_y = (torch.arange(ph, device=device, dtype=torch.float32) + 0.5) * ps
        centres_x = (torch.arange(pw, device=device, dtype=torch.float32) + 0.5) * ps
        terms, npos = [], 0
        for i, s in enumerate(samples):
            if not len(s.boxes):
                continue
            gt = torch.from_numpy(s.boxes).to(device)
            a = Y.responsible(s.boxes, (sh, sw), stride, pri_np)
            r, c, b, o = positives(boxes[i], gt, a)
            cf = coef[i, b, :, r, c]  # (P, k)
            logits = torch.einsum("pk,khw->phw", cf, proto[i])
            tgt = torch.from_numpy(mask_targets(s.masks, ps)).to(device)[o]
            g = gt[o]
            inside = ((centres_x[None, None, :] >= g[:, 0, None, None]) & (centres_x[None, None, :] < g[:, 2, None, None])
                      & (centres_y[None, :, None] >= g[:, 1, None, None]) & (centres_y[None, :, None] < g[:, 3, None, None]))
            area = inside.flatten(1).sum(1).clamp(min=1).float()
            bce = F.binary_cross_entropy_with_logits(logits, tgt, reduction="none") * inside
            terms.append((bce.flatten(1).sum(1) / area).sum())
            npos += len(o)
        mask_loss = torch.stack(terms).sum() / max(npos, 1) if terms else proto.sum() * 0.0
        logs = {"mask": float(mask_loss.detach()), "positives": npos / max(n, 1)}
        total = mask_loss
        if not getattr(model, "freeze_detector", True):
            det_loss, det_logs = self.detection_loss(model, out, samples, device)
            total = total + det_loss
            logs.update(det_logs)
        return total, logs

    @torch.no_grad()
    def evaluate(self, model, samples: list[InstanceSample], device):
        from segviewer.training.metrics import coco_mask_ap

        pri = self.priors()
        k = int(model.num_prototypes)
        gts_m, gts_b, preds_m, preds_b = [], [], [], []
        for i in range(0, len(samples), 8):
            chunk = samples[i:i + 8]
            x = to_tensor([s.image for s in chunk]).to(device)
            outs = {key: v.float().cpu().numpy() for key, v in model(x).items()}
            ps = x.shape[-1] / outs["proto"].shape[-1]
            for j, s in enumerate(chunk):
                grid = Y.decode(outs["out"][j], pri, int(model.stride))
                cand, _, keep = Y.postprocess(grid, size=s.image.shape[:2])
                cf = A.coefficients(outs["coef"][j], cand.cell[keep], cand.prior[keep], k)
                hw = s.image.shape[:2]
                crops, offs = A.assemble(outs["proto"][j], cf, cand.boxes[keep], hw, (1.0, 1.0), ps)
                full = MaskSet(hw, tuple(crops), offs).to_full()
                labels, scores = cand.class_ids[keep] + 1, cand.scores[keep]
                preds_m.append((labels, scores, full))
                preds_b.append((labels, scores, cand.boxes[keep]))
                gts_m.append((s.labels, s.masks))
                gts_b.append((s.labels, s.boxes, s.masks.reshape(len(s.masks), -1).sum(1)))
        ncls = len(self.categories)
        m, b = coco_mask_ap(gts_m, preds_m, ncls), coco_box_ap(gts_b, preds_b, ncls)
        return {"mask_ap": m["ap"], "mask_ap50": m["ap50"], "mask_ap75": m["ap75"],
                "box_ap": b["ap"], "box_ap50": b["ap50"], "box_ap75": b["ap75"]}
