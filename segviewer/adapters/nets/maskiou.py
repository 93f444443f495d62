"""Mask Scoring R-CNN's MaskIoU head: how good is a predicted mask? (Huang et al., CVPR 2019)

A Mask R-CNN scores a mask by its *box*'s classification confidence, which says nothing about
the mask's quality. The MaskIoU head regresses the IoU between a predicted mask and its ground
truth from what the mask head saw: the RoI's 14 x 14 pooled features (the mask head's input)
concatenated with the predicted mask max-pooled from 28 x 28 to 14 x 14, then four 3 x 3
convolutions (the last with stride 2: 7 x 7) and three fully connected layers giving one IoU per
class; the detection's predicted class picks its IoU. At test time the mask's score is
``s_mask = s_cls * s_iou``.

Here the head sits on the *frozen* bundled shapes Mask R-CNN (narrow: ``width`` channels rather
than the paper's 256). The mask input is the predicted class's sigmoid probabilities (the mask
the model predicts, bounded in [0, 1]) rather than raw logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

DEFAULT_CONFIG: dict[str, Any] = {
    "num_classes": 6,  # with background, like the Mask R-CNN's heads
    "in_channels": 128,  # the Mask R-CNN's FPN width: its mask RoI features
    "width": 64,
    "fc": 256,
    "roi_size": 14,
}


class MaskIoUHead(nn.Module):
    """The paper's design: concat(RoI features, maxpool(mask)) -> 4 convs -> 3 FCs -> IoU per class."""

    def __init__(self, num_classes: int = 6, in_channels: int = 128, width: int = 64, fc: int = 256,
                 roi_size: int = 14) -> None:
        super().__init__()
        self.num_classes, self.roi_size = int(num_classes), int(roi_size)
        chans = [in_channels + 1, width, width, width, width]
        self.convs = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 3, stride=2 if i == 3 else 1, padding=1) for i in range(4))
        side = (roi_size + 1) // 2
        self.fc1 = nn.Linear(width * side * side, fc)
        self.fc2 = nn.Linear(fc, fc)
        self.fc3 = nn.Linear(fc, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc3.weight, std=0.01)
        nn.init.zeros_(self.fc3.bias)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``features`` (N, C, 14, 14) mask RoI features; ``mask`` (N, 28, 28) the predicted
        class's mask probabilities. Returns (N, num_classes) raw IoU regressions."""
        m = F.max_pool2d(mask[:, None].to(features.dtype), kernel_size=2, stride=2)
        x = torch.cat([features, m], 1)
        for conv in self.convs:
            x = F.relu(conv(x))
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)

    def predict_iou(self, features: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N,) each detection's predicted mask IoU: its class's output, clamped to [0, 1]."""
        out = self(features, mask)
        if out.shape[0] == 0:
            return out.new_zeros((0,))
        return out[torch.arange(out.shape[0], device=out.device), labels.long()].clamp(0.0, 1.0)


def build_maskiou(config: dict[str, Any] | None = None) -> MaskIoUHead:
    """The head described by ``config`` (missing keys take :data:`DEFAULT_CONFIG`)."""
    cfg = {**DEFAULT_CONFIG, **(config or {})}
    return MaskIoUHead(int(cfg["num_classes"]), int(cfg["in_channels"]), int(cfg["width"]), int(cfg["fc"]),
                       int(cfg["roi_size"]))
