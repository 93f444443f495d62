"""Training the YOLO-style detector: targets, the loss and the evaluation.

Targets come from :func:`segviewer.analysis.yolo.responsible` (the cell holding an object's
centre, the prior with the best shape IoU), the same assignment the Internals view draws. Loss
per image, summed over predictors (YOLOv1's weights, v2's parametrisation):

* coordinates of responsible predictors: ``lambda_coord (|sigma(t_xy) - target_xy|^2 +
  |t_wh - log(wh / p_wh)|^2)`` with ``lambda_coord = 5``;
* confidence: binary cross entropy of ``sigma(t_o)`` against ``IoU(decoded box, truth)``
  (detached) for responsible predictors (v1's ``Pr(object) x IoU``), against 0 with weight
  ``lambda_noobj = 0.5`` for the others, except those whose box already overlaps a truth by more
  than ``ignore_iou`` (v2: not punished for a good second guess);
* the cell's class distribution: cross entropy at every cell that holds an object's centre.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segviewer.adapters.nets.registry import to_tensor
from segviewer.analysis import yolo as Y
from segviewer.training.centernet_task import coco_box_ap  # one COCO box AP for both one-stage models
from segviewer.training.data import InstanceSample

LAMBDA_COORD = 5.0
LAMBDA_NOOBJ = 0.5
IGNORE_IOU = 0.6


def _box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise IoU of xyxy boxes ``a`` and ``b`` of the same shape ``(..., 4)``."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda t: (t[..., 2:] - t[..., :2]).clamp(min=0).prod(-1)  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp(min=1e-6)


def decode_torch(out: torch.Tensor, priors: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, S_h, S_w, B, 4)`` xyxy boxes and ``(N, S_h, S_w, B, 5)`` raw ``t`` of a batch (the
    training-time twin of :func:`segviewer.analysis.yolo.decode`, kept differentiable)."""
    n, _, sh, sw = out.shape
    nb = priors.shape[0]
    t = out[:, : 5 * nb].permute(0, 2, 3, 1).reshape(n, sh, sw, nb, 5)
    cy, cx = torch.meshgrid(torch.arange(sh, device=out.device, dtype=out.dtype),
                            torch.arange(sw, device=out.device, dtype=out.dtype), indexing="ij")
    bx = (torch.sigmoid(t[..., 0]) + cx[..., None]) * stride
    by = (torch.sigmoid(t[..., 1]) + cy[..., None]) * stride
    bw = priors[:, 0] * torch.exp(t[..., 2].clamp(max=6))
    bh = priors[:, 1] * torch.exp(t[..., 3].clamp(max=6))
    return torch.stack([bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2], -1), t


@dataclass
class YoloTask:
    """YOLO on the shapes world's instance samples (boxes and 1-based labels; masks unused).

    The training loop's task interface (:class:`segviewer.training.tasks.Task`) by shape, so that
    module can list this one without an import cycle."""

    categories: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    kind: str = "instance"
    name: str = "yolo"

    @property
    def num_classes(self) -> int:
        return len(self.categories) - 1  # the detection categories start with "__background__"

    def build(self) -> nn.Module:
        from segviewer.adapters.nets.registry import build

        return build("yolo", self.categories, self.config)

    def priors(self) -> np.ndarray:
        from segviewer.adapters.nets.yolo import DEFAULT_CONFIG

        return np.asarray(self.config.get("priors", DEFAULT_CONFIG["priors"]), np.float32)

    def loss(self, model, samples: list[InstanceSample], device):
        return self.detection_loss(model, model(to_tensor([s.image for s in samples]).to(device)), samples, device)

    def detection_loss(self, model, out: torch.Tensor, samples: list[InstanceSample], device):
        """YOLO's loss of the head output ``out`` (``(N, 5B + C, S_h, S_w)``) against ``samples``."""
        n, _, sh, sw = out.shape
        pri_np = self.priors()
        nb, stride = len(pri_np), int(model.stride)
        pri = torch.from_numpy(pri_np).to(device)
        boxes, t = decode_torch(out, pri, stride)
        cls_logits = out[:, 5 * nb:].permute(0, 2, 3, 1)  # (N, S_h, S_w, C)

        resp = torch.zeros(n, sh, sw, nb, dtype=torch.bool, device=device)
        tgt = torch.zeros(n, sh, sw, nb, 4, device=device)
        tbox = torch.zeros(n, sh, sw, nb, 4, device=device)
        tcls = torch.full((n, sh, sw), -100, dtype=torch.long, device=device)
        noobj = torch.ones(n, sh, sw, nb, dtype=torch.bool, device=device)
        for i, s in enumerate(samples):
            if not len(s.boxes):
                continue
            a = Y.responsible(s.boxes, (sh, sw), stride, pri_np)
            first = a.taken_by < 0
            r, c, b = (torch.from_numpy(v[first]).to(device) for v in (a.row, a.col, a.prior))
            resp[i, r, c, b] = True
            tgt[i, r, c, b] = torch.from_numpy(a.target[first]).to(device)
            gt = torch.from_numpy(s.boxes).to(device)
            tbox[i, r, c, b] = gt[torch.from_numpy(first).to(device)]
            tcls[i, torch.from_numpy(a.row).to(device), torch.from_numpy(a.col).to(device)] = \
                torch.from_numpy(s.labels - 1).to(device)
            with torch.no_grad():  # v2's ignore rule: a box already on some object is no false positive
                ious = _box_iou(boxes[i].detach()[..., None, :], gt.view(1, 1, 1, -1, 4)).amax(-1)
                noobj[i] &= ious <= IGNORE_IOU
        noobj &= ~resp

        xy = torch.sigmoid(t[..., :2])[resp]
        loss_xy = F.mse_loss(xy, tgt[resp][:, :2], reduction="sum")
        loss_wh = F.mse_loss(t[..., 2:4][resp], tgt[resp][:, 2:], reduction="sum")
        with torch.no_grad():
            iou = _box_iou(boxes[resp], tbox[resp]).clamp(0, 1)
        conf = t[..., 4]
        loss_obj = F.binary_cross_entropy_with_logits(conf[resp], iou, reduction="sum")
        loss_noobj = F.binary_cross_entropy_with_logits(conf[noobj], torch.zeros_like(conf[noobj]), reduction="sum")
        loss_cls = F.cross_entropy(cls_logits.reshape(-1, cls_logits.shape[-1]), tcls.reshape(-1),
                                   ignore_index=-100, reduction="sum")
        parts = {"coord": LAMBDA_COORD * (loss_xy + loss_wh) / n, "obj": loss_obj / n,
                 "noobj": LAMBDA_NOOBJ * loss_noobj / n, "cls": loss_cls / n}
        total = sum(parts.values())
        logs = {k: float(v.detach()) for k, v in parts.items()}
        logs["iou"] = float(iou.mean()) if iou.numel() else 0.0
        return total, logs

    @torch.no_grad()
    def evaluate(self, model, samples: list[InstanceSample], device):
        pri = self.priors()
        gts, preds = [], []
        for i in range(0, len(samples), 8):
            chunk = samples[i:i + 8]
            out = model(to_tensor([s.image for s in chunk]).to(device)).float().cpu().numpy()
            for s, o in zip(chunk, out):
                grid = Y.decode(o, pri, int(model.stride))
                cand, _, keep = Y.postprocess(grid, size=s.image.shape[:2])
                preds.append((cand.class_ids[keep] + 1, cand.scores[keep], cand.boxes[keep]))
                gts.append((s.labels, s.boxes, s.masks.reshape(len(s.masks), -1).sum(1)))
        ap = coco_box_ap(gts, preds, len(self.categories))
        return {"box_ap": ap["ap"], "box_ap50": ap["ap50"], "box_ap75": ap["ap75"]}

