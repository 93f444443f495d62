"""One task object per model family: how to build the net, turn samples into a loss, and
evaluate. The loop (:mod:`segviewer.training.loop`) only talks to this small interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segviewer.adapters.nets import registry
from segviewer.adapters.nets.registry import MEAN, STD, to_tensor
from segviewer.training import pcv_targets
from segviewer.training.centernet_task import CenterNetTask
from segviewer.training.data import InstanceSample, SemanticSample
from segviewer.training.kinds import KINDS
from segviewer.training.metrics import coco_mask_ap, confusion, semantic_scores
from segviewer.training.yolact_task import YolactTask
from segviewer.training.yolo_task import YoloTask


def random_crop(sample: SemanticSample, size: int, rng: np.random.Generator) -> SemanticSample:
    """Scale the shorter side to ``size`` (folders hold any size) and crop ``size x size``; the
    shapes world is already 256 x 256 and passes through untouched."""
    import cv2

    img, lab = sample.image, sample.labels
    h, w = lab.shape
    if (h, w) == (size, size):
        return sample
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    lab = cv2.resize(lab, (nw, nh), interpolation=cv2.INTER_NEAREST)
    y, x = int(rng.integers(0, nh - size + 1)), int(rng.integers(0, nw - size + 1))
    return SemanticSample(img[y:y + size, x:x + size], lab[y:y + size, x:x + size], (), sample.name)


def _down(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Labels ``(N, H, W)`` subsampled (nearest, cell centres) to ``size``."""
    h, w = y.shape[-2:]
    sh, sw = h // size[0], w // size[1]
    return y[:, sh // 2::sh, sw // 2::sw][:, : size[0], : size[1]].contiguous()


@dataclass
class Task:
    """Base: ``kind`` is "semantic" or "instance" (which samples it eats)."""

    categories: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    kind: str = "semantic"
    name: str = ""

    def build(self) -> nn.Module:
        """The untrained net (construction lives with the adapters: :mod:`segviewer.adapters.nets.registry`)."""
        return registry.build(self.name, list(self.categories), self.config)

    def loss(self, model: nn.Module, samples: list, device: str) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError  # pragma: no cover

    @torch.no_grad()
    def evaluate(self, model: nn.Module, samples: list, device: str) -> dict[str, float]:
        raise NotImplementedError  # pragma: no cover


class SemanticTask(Task):
    """FCN / U-Net: cross entropy on every labelled pixel (255 ignored)."""

    def logits(self, out: Any) -> dict[str, torch.Tensor]:
        return out if isinstance(out, dict) else {"out": out}

    def loss(self, model, samples, device):
        x = to_tensor([s.image for s in samples]).to(device)
        y = torch.from_numpy(np.stack([s.labels for s in samples]).astype(np.int64)).to(device)
        outs = self.logits(model.forward_train(x) if hasattr(model, "forward_train") else model(x))
        # FCN: every stage gets a loss (the final 8s counts most) so all three are worth showing.
        # U-Net: the bottleneck's deep-supervision logits against labels downsampled (nearest).
        weights = {"32s": 0.3, "16s": 0.3, "8s": 1.0, "out": 1.0, "aux": 0.4}
        parts = {k: F.cross_entropy(v, y if v.shape[-2:] == y.shape[-2:] else _down(y, v.shape[-2:]),
                                    ignore_index=255) for k, v in outs.items()}
        total = sum(weights[k] * v for k, v in parts.items())
        return total, {f"ce_{k}": float(v.detach()) for k, v in parts.items()}

    @torch.no_grad()
    def evaluate(self, model, samples, device):
        n = len(self.categories)
        confs: dict[str, np.ndarray] = {}
        for i in range(0, len(samples), 4):
            chunk = samples[i:i + 4]
            outs = self.logits(model(to_tensor([s.image for s in chunk]).to(device)))
            for k, v in outs.items():
                pred = v.argmax(1).cpu().numpy()
                for s, p in zip(chunk, pred):
                    confs[k] = confs.get(k, 0) + confusion(s.labels, p, n)
        res: dict[str, float] = {}
        for k, c in confs.items():
            sc = semantic_scores(c)
            pre = "" if k in ("out", "8s") else f"{k}_"
            res.update({f"{pre}{m}": v for m, v in sc.items()})
        return res


class PCVTask(SemanticTask):
    """Semantic cross entropy plus the voting head's cross entropy over 17 cells + abstain."""

    def vote_target(self, s: SemanticSample) -> np.ndarray:
        return pcv_targets.vote_targets(list(s.instances), s.labels.shape, int(self.config["vote_stride"]),
                                        float(self.config["cell_size"]))

    def loss(self, model, samples, device):
        x = to_tensor([s.image for s in samples]).to(device)
        y = torch.from_numpy(np.stack([s.labels for s in samples]).astype(np.int64)).to(device)
        v = torch.from_numpy(np.stack([self.vote_target(s) for s in samples]).astype(np.int64)).to(device)
        out = model(x)
        ce_sem = F.cross_entropy(out["semantic"], y, ignore_index=255)
        ce_vote = F.cross_entropy(out["votes"], v, ignore_index=pcv_targets.IGNORE)
        ce_aux = F.cross_entropy(out["aux"], _down(y, out["aux"].shape[-2:]), ignore_index=255)
        return ce_sem + ce_vote + 0.4 * ce_aux, {"ce_sem": float(ce_sem.detach()), "ce_vote": float(ce_vote.detach()),
                                                 "ce_aux": float(ce_aux.detach())}

    @torch.no_grad()
    def evaluate(self, model, samples, device):
        n = len(self.categories)
        conf = 0
        correct = total = 0
        for i in range(0, len(samples), 4):
            chunk = samples[i:i + 4]
            out = model(to_tensor([s.image for s in chunk]).to(device))
            sem = out["semantic"].argmax(1).cpu().numpy()
            votes = out["votes"].argmax(1).cpu().numpy()
            for s, p, vp in zip(chunk, sem, votes):
                conf = conf + confusion(s.labels, p, n)
                t = self.vote_target(s)
                thing = t < pcv_targets.NUM_CELLS
                correct += int((vp[thing] == t[thing]).sum())
                total += int(thing.sum())
        res = semantic_scores(conf)
        res["vote_acc"] = correct / max(total, 1)
        return res


class MaskRCNNTask(Task):
    """torchvision's Mask R-CNN losses (RPN objectness and boxes, RoI class, box and mask)."""

    def loss(self, model, samples: list[InstanceSample], device):
        imgs = [torch.from_numpy(s.image).permute(2, 0, 1).float().div(255).to(device) for s in samples]
        targets = [{"boxes": torch.from_numpy(s.boxes).to(device),
                    "labels": torch.from_numpy(s.labels).to(device),
                    "masks": torch.from_numpy(s.masks.astype(np.uint8)).to(device)} for s in samples]
        parts = model(imgs, targets)
        total = sum(parts.values())
        return total, {k.replace("loss_", ""): float(v.detach()) for k, v in parts.items()}

    @torch.no_grad()
    def evaluate(self, model, samples: list[InstanceSample], device):
        gts, preds = [], []
        for s in samples:
            out = model([torch.from_numpy(s.image).permute(2, 0, 1).float().div(255).to(device)])[0]
            masks = (out["masks"][:, 0] > 0.5).cpu().numpy()
            preds.append((out["labels"].cpu().numpy(), out["scores"].cpu().numpy(), masks))
            gts.append((s.labels, s.masks))
        ap = coco_mask_ap(gts, preds, len(self.categories))
        box = coco_mask_ap(gts, preds, len(self.categories), iou_type="bbox")
        return {"mask_ap": ap["ap"], "mask_ap50": ap["ap50"], "mask_ap75": ap["ap75"],
                "box_ap": box["ap"], "box_ap50": box["ap50"]}


DEFAULTS: dict[str, dict[str, Any]] = {
    "maskrcnn": {"batch_size": 4, "lr": 1e-3, "weight_decay": 1e-4, "warmup": 300, "steps": 3000},
    "fcn": {"batch_size": 4, "lr": 2e-3, "weight_decay": 1e-4, "warmup": 100, "steps": 3000},
    "unet": {"batch_size": 4, "lr": 2e-3, "weight_decay": 1e-4, "warmup": 100, "steps": 3000},
    "pcv": {"batch_size": 4, "lr": 2e-3, "weight_decay": 1e-4, "warmup": 100, "steps": 3000},
    "centernet": {"batch_size": 8, "lr": 2e-3, "weight_decay": 1e-4, "warmup": 100, "steps": 6000},
    "yolo": {"batch_size": 8, "lr": 1e-3, "weight_decay": 1e-4, "warmup": 100, "steps": 3000},
    "yolact": {"batch_size": 8, "lr": 2e-3, "weight_decay": 1e-4, "warmup": 50, "steps": 3000},
}

#: kind -> its task class (which samples each eats: :data:`segviewer.training.kinds.KINDS`). A new
#: family adds one line here, one in ``kinds.KINDS`` and one Family in the nets registry.
TASKS: dict[str, type[Task]] = {
    "maskrcnn": MaskRCNNTask,
    "fcn": SemanticTask,
    "unet": SemanticTask,
    "pcv": PCVTask,
    "centernet": CenterNetTask,  # type: ignore[dict-item]  # the Task interface by shape
    "yolo": YoloTask,  # type: ignore[dict-item]  # the Task interface by shape
    "yolact": YolactTask,  # type: ignore[dict-item]  # the Task interface by shape
}
if set(TASKS) != set(KINDS):  # pragma: no cover - a developer's slip, caught at import
    raise RuntimeError("training.kinds.KINDS and tasks.TASKS must list the same kinds")
MODELS = tuple(TASKS)  # the kinds `segviewer train --model` offers
full_config = registry.full_config


def make_task(model: str, categories: list[str], config: dict[str, Any] | None = None) -> Task:
    if model not in TASKS:
        raise ValueError(f"unknown model kind {model!r}; known: {', '.join(TASKS)}")
    return TASKS[model](list(categories), registry.full_config(model, config), KINDS[model], model)


__all__ = ["DEFAULTS", "MEAN", "MODELS", "STD", "TASKS", "Task", "full_config", "make_task", "random_crop", "to_tensor"]
